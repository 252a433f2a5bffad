// Renders the gateway's status page in headless Chromium (Debian's, through playwright-core) and
// prints what was rendered as JSON: texts, chart lines, requests made, and a screenshot's path.
import { chromium } from "playwright-core";

const url = process.env.PAGE_URL;
const screenshot = process.env.SCREENSHOT;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const requests = [];
  page.on("request", (request) => requests.push(request.url()));
  const consoleErrors = [];
  page.on("console", (message) => { if (message.type() === "error") consoleErrors.push(message.text()); });
  const response = await page.goto(url, { waitUntil: "load" });
  const text = async (selector) => (await page.locator(selector).first().textContent())?.trim();
  const charts = {};
  for (const id of ["accepted-chart", "rejected-chart", "backlog-chart"]) {
    const box = await page.locator(`#${id}`).boundingBox();
    const points = await page.locator(`#${id} polyline`).getAttribute("points").catch(() => null);
    charts[id] = { width: box?.width ?? 0, height: box?.height ?? 0, points: points ? points.split(" ").length : 0 };
  }
  const outcomes = {};
  for (const cell of await page.locator("#outcome-table tr[data-project='demo'] td[data-outcome]").all()) {
    outcomes[await cell.getAttribute("data-outcome")] = Number(await cell.textContent());
  }
  const backlog = {};
  for (const row of await page.locator("#backlog-table tr[data-table]").all()) {
    backlog[await row.getAttribute("data-table")] = Number(await row.locator("td").nth(1).textContent());
  }
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({
    status: response.status(), title: await page.title(), gatewayId: await text("#gateway-id"),
    version: await text("#version"), state: await text("#state"), uptime: await text("#uptime"),
    quarantine: await text("#quarantine"), diskFree: await text("#disk-free"), ready: await text("#ready"),
    charts, outcomes, backlog, requests, consoleErrors,
  }));
} finally {
  await browser.close();
}

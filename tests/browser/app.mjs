// What the browser scripts share: Debian's chromium (never a downloaded browser) and the ways a
// user finds things on the App's page.
import { chromium } from "playwright-core";

export const launch = () => chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});

// A page of its own browser context (its own storage: another user's browser) at a laptop's size.
export const freshPage = async (browser, viewport = { width: 1280, height: 800 }) => {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  await page.addInitScript(() => { window.IS_PLAYWRIGHT = true; });  // no "Explore Enterprise" pop-up
  return [context, page];
};

export const on = (page) => ({
  text: (pattern) => page.getByText(pattern).first(),
  tab: (label) => page.getByRole("button", { name: label }).first(),
  clickCentre: async (locator) => {
    const box = await locator.boundingBox();
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  },
  // a concept's 👍 or 👎 in the knowledge chart, k-th row
  thumb: (which, k) => page.locator(".textpoint text", { hasText: which }).nth(k),
});

// What of the open tab does not fit the window: ``{wide, outside}``, the elements under the App's
// header that scroll sideways (each named by its tag, widths, class and first words), and the labels of
// ``controls`` (``[label, () => bounding box]``) not wholly inside the viewport.
export const misfits = async (page, controls = []) => {
  const wide = await page.evaluate(() => [...document.querySelectorAll("*")].filter((e) =>
    e.scrollWidth > e.clientWidth + 2 && ["auto", "scroll"].includes(getComputedStyle(e).overflowX)
    && e.getBoundingClientRect().top > 80)
    .map((e) => `${e.tagName} ${e.scrollWidth}>${e.clientWidth} ${String(e.className).slice(0, 60)} ${e.innerText.slice(0, 40)}`));
  const viewport = page.viewportSize();
  const outside = [];
  for (const [label, where] of controls) {
    const box = await where();
    if (!box || box.x < 0 || box.y < 0 || box.x + box.width > viewport.width + 1 || box.y + box.height > viewport.height + 1)
      outside.push(label);
  }
  return { wide, outside };
};

// A wait until the page has answered: no operator call (panel event, operator, form) in flight and
// none started or ended for ``quiet`` ms, then two frames drawn. Made once per page, before use.
export const settler = (page) => {
  let inFlight = 0;
  let last = performance.now();
  const track = (step) => (request) => {
    if (!request.url().includes("/operators/")) return;  // events, operators, their forms
    inFlight += step;
    last = performance.now();
  };
  page.on("request", track(1));
  page.on("requestfinished", track(-1));
  page.on("requestfailed", track(-1));
  return async (quiet = 700) => {
    while (inFlight > 0 || performance.now() - last < quiet) await page.waitForTimeout(100);
    await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
  };
};

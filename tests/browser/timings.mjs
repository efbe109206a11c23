// How long a user waits in the real App, from a click to its answer drawn: node timings.mjs <url>.
// benchmarks/panels.py runs it on the demo world and on a raw-started dataset; prints one JSON line of
// medians in seconds. first paint: a fresh browser context (no cache) until the performance chart is drawn,
// 3 times; the concept map's first drawing, once;
// class change, ranking change, 👍 click and Fine-tune in the knowledge tab: 5 times each.
import { freshPage, launch, on } from "./app.mjs";

const [url] = process.argv.slice(2);
const browser = await launch();
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const seconds = (start) => (performance.now() - start) / 1000;

const result = {};
let page, waitingOn;  // the page being waited on, shot where the timings stop
try {
  const paints = [];
  for (let i = 0; i < 3; i++) {
    const [context, fresh] = await freshPage(browser);
    waitingOn = fresh;
    const start = performance.now();
    await fresh.goto(url);
    await fresh.getByText(/Selected class: /).first().waitFor({ timeout: 120000 });
    await fresh.locator(".js-plotly-plot .barlayer path").first().waitFor({ timeout: 120000 });
    paints.push(seconds(start));
    if (i < 2) await context.close();
    else page = fresh;
  }
  result.browser_first_paint_s = median(paints);

  // the concept map's first drawing in this App server (its projection computed when the concepts
  // were, read from the database), from the tab's click until its points are drawn
  const mapStart = performance.now();
  await page.getByRole("button", { name: "Concept map" }).first().click();
  await page.getByText(/concepts of '.*' by t-SNE/).first().waitFor({ timeout: 120000 });
  await page.locator(".js-plotly-plot .scatterlayer path.point").first().waitFor({ timeout: 120000 });
  result.browser_map_first_s = seconds(mapStart);

  const { text, thumb } = on(page);
  // the answer drawn: the App has applied the server's answer and painted twice since
  const answered = async (action) => {
    const response = page.waitForResponse((r) => r.url().includes("/operators/execute"), { timeout: 60000 });
    const start = performance.now();
    await action();
    await response;
    await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
    return seconds(start);
  };
  // the answers' arrival: when the last server call of an action finished (the rest is drawing)
  let lastAnswer = 0;
  page.on("requestfinished", (request) => {
    if (request.url().includes("/operators/execute")) lastAnswer = performance.now();
  });
  const answeredAt = {};  // action -> seconds from its click to its last answer's arrival
  const timedUntil = async (action, pattern, name) => {
    const start = performance.now();
    await action();
    await text(pattern).waitFor({ timeout: 60000 });
    if (name) (answeredAt[name] ??= []).push((lastAnswer - start) / 1000);
    return seconds(start);
  };

  await page.getByRole("button", { name: "Student knowledge" }).first().click();
  const header = text(/ · student AP .* run '.*' revision/);
  await header.waitFor({ timeout: 60000 });
  const first = (await header.innerText()).split(" · ")[0];

  // class change: pick another class in the knowledge tab's Class box, until its header shows it
  const box = page.locator(`input[value="${first}"]`).first();
  await box.click();
  const names = (await page.getByRole("option").allInnerTexts()).map((n) => n.trim()).filter((n) => n !== first);
  await page.keyboard.press("Escape");
  const changes = [];
  let shown = first;
  for (const name of [...names.slice(0, 4), first]) {
    await page.locator(`input[value="${shown}"]`).first().click();
    const option = page.getByRole("option", { name, exact: true });
    changes.push(await timedUntil(() => option.click(), new RegExp(`^${name} · student AP`), "select_class"));
    shown = name;
    await page.waitForTimeout(500);
  }
  result.browser_select_class_s = median(changes);

  // ranking change: the knowledge tab's ranking dropdown, until the answer is drawn
  const rankings = ["discrepancy among the teacher's predicted positives", "discrepancy among the teacher's predicted negatives",
    "influence (weight)"];
  const ranks = [];
  let current = "influence (weight)";
  for (let i = 0; i < 5; i++) {
    const next = rankings[i % 3];
    await page.getByRole("combobox").filter({ hasText: current }).click();
    ranks.push(await answered(() => page.getByRole("option", { name: next }).click()));
    current = next;
    await page.waitForTimeout(500);
  }
  result.browser_rank_s = median(ranks);

  // 👍 click: on the top concept, until the pending line says so; the second click takes it back
  const thumbs = [];
  const up = () => thumb("👍", 0);
  const clickUp = async () => {
    const box = await up().boundingBox();
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  };
  for (let i = 0; i < 5; i++) {
    thumbs.push(await timedUntil(clickUp, /^Pending /, "thumb"));
    await timedUntil(clickUp, /^No pending instructions/);
    await page.waitForTimeout(300);
  }
  result.browser_thumb_s = median(thumbs);

  // Fine-tune after a 👍 (which clears the last answer), until the revision it saved is named
  const tunes = [];
  for (let i = 0; i < 5; i++) {
    await timedUntil(clickUp, /^Pending /);
    tunes.push(await timedUntil(() => page.getByRole("button", { name: "Fine-tune" }).click(), /^✅ Revision \d+ saved/,
      "finetune"));
    await page.waitForTimeout(500);
  }
  result.browser_finetune_s = median(tunes);
  for (const [name, values] of Object.entries(answeredAt)) result[`browser_${name}_answered_s`] = median(values);
} catch (error) {
  result.error = String(error).slice(0, 500);
  const shot = new URL("../artifacts/timings-error.png", import.meta.url).pathname;
  await waitingOn?.screenshot({ path: shot }).then(() => { result.screenshot = shot; }, () => {});
} finally {
  console.log(JSON.stringify(result));
  await browser.close();
}

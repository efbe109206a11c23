// One no-code tuning loop in the real App: node loop.mjs <url> <screenshot folder>.
// Prints one JSON line of what the page showed at each step; the pytest test asserts on it.
import { chromium } from "playwright-core";

const [url, out] = process.argv.slice(2);
const seen = {};
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1800, height: 1100 } });
await page.addInitScript(() => { window.IS_PLAYWRIGHT = true; });  // no "Explore Enterprise" pop-up
const shot = (name) => page.screenshot({ path: `${out}/${name}.png` });
const text = (pattern) => page.getByText(pattern).first();
const clickCentre = async (locator) => {
  const box = await locator.boundingBox();
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
};
const gridCount = async () => (await text(/^[\d,]+ samples?$/).innerText()).trim();

try {
  await page.goto(url);
  await text(/Selected class: /).waitFor({ timeout: 90000 });
  await page.locator("canvas").first().waitFor({ timeout: 90000 });
  await page.waitForTimeout(3000);
  seen.header = await text(/Selected class: /).innerText();
  seen.gridBefore = await gridCount();
  await shot("1-open");

  // The worst class is selected; rank its concepts by discrepancy among the teacher's positives.
  await page.getByRole("combobox").filter({ hasText: "influence (weight)" }).click();
  await page.getByRole("option", { name: "discrepancy among the teacher's positives" }).click();
  await text(/^1\. /).waitFor();
  await page.waitForTimeout(2000);
  seen.knowledgeHeader = await text(/student AP .* run 'students' revision/).innerText();
  await shot("2-by-discrepancy");

  // 👍 the top concept, then Fine-tune.
  await clickCentre(page.locator(".textpoint text", { hasText: "👍" }).first());
  await text(/^Pending /).waitFor();
  seen.pending = await text(/^Pending /).innerText();
  await shot("3-thumbs-up");
  await page.getByRole("button", { name: "Fine-tune" }).click();
  await text(/Revision 1 saved/).waitFor({ timeout: 60000 });
  seen.saved = await text(/Revision 1 saved/).innerText();
  seen.headerAfterTune = await text(/Selected class: /).innerText();  // the performance panel followed
  await shot("4-fine-tuned");

  // Provenance shows the new entry.
  await page.getByText("InFiConD: provenance").click();
  await text(/1 fine-tunes/).waitFor({ timeout: 30000 });
  seen.provenance = await text(/1 fine-tunes/).innerText();
  seen.provenanceRow = await page.getByRole("row").filter({ hasText: "👍" }).first().innerText();
  await shot("5-provenance");

  // Export the tuned run from provenance, then predict with the export (executed now, not scheduled).
  await page.getByRole("button", { name: "Export this run…" }).click();
  await page.locator("[role=dialog]").getByText("Revision to export").waitFor({ timeout: 30000 });
  await page.waitForTimeout(2000);
  await page.getByRole("button", { name: "Execute" }).click();
  await text(/^Exported /).waitFor({ timeout: 90000 });
  seen.exported = await text(/^Exported /).innerText();
  await shot("5b-exported");
  await page.getByRole("button", { name: "Close" }).click();
  await page.getByRole("button", { name: "Predict with an export…" }).click();
  await page.locator("[role=dialog]").getByText("Label field").waitFor({ timeout: 30000 });
  await page.waitForTimeout(2000);
  await page.locator("[role=dialog] button").last().click();  // the menu beside Schedule
  await page.getByRole("menuitem").filter({ hasText: "Execute" }).click();
  await page.getByRole("button", { name: "Execute" }).click();
  await text(/ written on [\d,]+ samples by export /).waitFor({ timeout: 120000 });
  seen.predicted = await text(/ written on [\d,]+ samples by export /).innerText();
  await shot("5c-predicted");
  await page.getByRole("button", { name: "Close" }).click();
  await page.locator('[data-cy="checkbox-student"]').waitFor({ timeout: 30000 });  // the App learnt the field

  // A subset of the performance panel filters the grid.
  await page.getByText("InFiConD: student performance").click();
  await text(/Selected class: /).waitFor();
  await page.waitForTimeout(2000);
  // a subset with samples (one of none is a bar of no width) in the top row: the selected class
  const subsets = page.locator(".js-plotly-plot").filter({ hasText: "positives" }).first().locator(".barlayer .point path");
  const boxes = await subsets.evaluateAll((bars) => bars.map((b) => b.getBoundingClientRect()).map(
    (r) => ({ width: r.width, y: r.y + r.height / 2 })));
  const top = Math.min(...boxes.map((b) => b.y));
  await clickCentre(subsets.nth(boxes.findIndex((b) => b.width > 4 && Math.abs(b.y - top) < 2)));
  await text(/^Grid: the /).waitFor({ timeout: 30000 });
  seen.subset = await text(/^Grid: the /).innerText();
  seen.panelsSayingSo = await page.getByText(/^Grid: the /).count();  // performance and knowledge
  await page.waitForFunction((before) => ![...document.querySelectorAll("*")].some(
    (e) => e.childElementCount === 0 && e.textContent.trim() === before), seen.gridBefore, { timeout: 30000 });
  await page.waitForTimeout(3000);
  seen.gridAfter = await gridCount();
  await shot("6-subset-in-grid");

  // The concept map: lasso the concepts around one point; the knowledge panel ranks only those.
  await page.getByText("InFiConD: concept map").click();
  await text(/concepts of 'concepts' by t-SNE/).waitFor({ timeout: 60000 });
  await page.waitForTimeout(2000);
  await shot("7-concept-map");
  const map = page.locator(".js-plotly-plot").filter({ has: page.locator(".colorbar") }).first();  // weight colours
  // the point nearest the map's centre, so the lasso around it stays inside the plot
  const drag = await map.locator(".nsewdrag").first().boundingBox();
  const [mx, my] = [drag.x + drag.width / 2, drag.y + drag.height / 2];
  const centres = await map.locator(".scatterlayer .trace").first().locator("path.point").evaluateAll(
    (points) => points.map((p) => { const b = p.getBoundingClientRect(); return [b.x + b.width / 2, b.y + b.height / 2]; }));
  const [cx, cy] = centres.sort((a, b) => Math.hypot(a[0] - mx, a[1] - my) - Math.hypot(b[0] - mx, b[1] - my))[0];
  const r = 40;
  await page.mouse.move(cx - r, cy - r);
  await page.mouse.down();
  for (const [dx, dy] of [[r, -r], [r, r], [-r, r], [-r, -r]]) await page.mouse.move(cx + dx, cy + dy, { steps: 6 });
  await page.mouse.up();
  await text(/^Knowledge panel shows only \d+/).waitFor({ timeout: 30000 });
  seen.lassoed = await text(/^Knowledge panel shows only \d+/).innerText();
  await text(/concepts? selected on the concept map/).waitFor({ timeout: 30000 });
  seen.knowledgeFiltered = await text(/concepts? selected on the concept map/).innerText();
  await page.waitForTimeout(2000);
  await shot("8-lasso-filters-knowledge");

  // Click a concept: its detail opens beside the knowledge panel.
  // (the map moved down: the selection is listed above it)
  const moved = await map.locator(".scatterlayer .trace").first().locator("path.point").evaluateAll(
    (points) => points.map((p) => { const b = p.getBoundingClientRect(); return [b.x + b.width / 2, b.y + b.height / 2]; }));
  const [ox, oy] = moved.sort((a, b) => Math.hypot(a[0] - mx, a[1] - my) - Math.hypot(b[0] - mx, b[1] - my))[8];
  await page.mouse.click(ox, oy);
  await text(/^Concept detail: '/).waitFor({ timeout: 30000 });
  seen.detailMessage = await text(/^Concept detail: '/).innerText();
  await text(/ concepts its student uses[^)]*\) · mean presence /).waitFor({ timeout: 30000 });
  seen.detailHeader = await text(/ concepts its student uses[^)]*\) · mean presence /).innerText();
  await page.waitForTimeout(2000);
  await shot("9-concept-detail");

  // Show in grid: the samples where the concept is most present, with its heatmap.
  const gridBeforeDetail = await gridCount();
  await page.getByRole("button", { name: "Show in grid" }).click();
  await text(/^Grid: the \d+ held-out samples where/).waitFor({ timeout: 60000 });
  seen.shownInGrid = await text(/^Grid: the \d+ held-out samples where/).innerText();
  await page.waitForFunction((before) => ![...document.querySelectorAll("*")].some(
    (e) => e.childElementCount === 0 && e.textContent.trim() === before), gridBeforeDetail, { timeout: 30000 });
  await page.waitForTimeout(4000);
  seen.gridWithOverlay = await gridCount();
  seen.overlayActive = await page.locator('[data-cy="checkbox-concepts_overlay"] input').isChecked();
  await shot("10-concept-in-grid");
} catch (error) {
  seen.error = String(error).slice(0, 500);
  await shot("failed");
} finally {
  console.log(JSON.stringify(seen));
  await browser.close();
}

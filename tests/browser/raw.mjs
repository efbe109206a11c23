// A user's own raw dataset to a saved, noted and reverted revision, in the App alone: node raw.mjs <url>
// <screenshot folder> <checkpoint file>. The dataset has images, ground truth and a model's predictions;
// nothing of InFiConD (no concepts, teacher, students or workspace). Every known choice is picked from a
// dropdown; the only boxes typed into are FiftyOne's file explorer (where the checkpoint is) and the notes.
// Prints one JSON line of what the page showed at each step; tests/test_app_raw.py asserts on it.
import { freshPage, launch, misfits, on, settler } from "./app.mjs";

const [url, out, checkpoint] = process.argv.slice(2);
const seen = { fit: {}, answers: {}, typedInto: [], tracebacks: [] };
const browser = await launch();
const [, page] = await freshPage(browser);
const settle = settler(page);
const { text, tab, clickCentre, thumb } = on(page);
const dialog = page.locator("[role=dialog]");
const shot = (name) => page.screenshot({ path: `${out}/raw-${name}.png` });

// Whether any text on the page looks like a Python traceback (kept, with where it was seen).
const noTraceback = async (where) => {
  const body = await page.locator("body").innerText();
  if (/Traceback \(most recent call last\)|File "[^"]+", line \d+/.test(body)) seen.tracebacks.push(where);
};
// A dropdown of the open form, found by its label, set to the option named ``option``.
const pick = async (label, option) => {
  await dialog.getByText(label, { exact: true }).first().locator("xpath=following::*[@role='combobox'][1]").click();
  await page.getByRole("option", { name: option }).first().click();
  await settle();
};
// An operator from FiftyOne's operator browser, as a user opens one: ` then its name.
const operator = async (name, formText) => {
  await page.getByText(/^[\d,]+ samples?$/).first().click();  // the page's focus back from a closed dialog
  await page.keyboard.press("Backquote");
  await page.keyboard.type(name, { delay: 30 });
  await page.keyboard.press("Enter");
  await dialog.getByText(formText, { exact: true }).first().waitFor({ timeout: 30000 });
  await settle();
};
// Execute, then the operator's answer (``pattern``) in the dialog; kept under ``name``; the dialog closed.
const execute = async (name, pattern, timeout = 240000) => {
  await dialog.getByRole("button", { name: "Execute" }).click();
  await dialog.getByText(pattern).first().waitFor({ timeout });
  seen.answers[name] = await dialog.getByText(pattern).first().innerText();
  await noTraceback(name);
  await shot(`${name}-answer`);
  await dialog.getByRole("button", { name: "Close" }).click();
  await settle();
};
// What of the page does not fit the window (see app.mjs); ``controls``: ``[label, locator]``.
const fit = async (name, controls = []) => {
  seen.fit[name] = await misfits(page, controls.map(([label, locator]) => [label, () => locator.boundingBox()]));
};
// Whether a locator's element is wholly on screen: inside the viewport and every scrolling box around it.
const inView = (locator) => locator.evaluate((element) => {
  const box = element.getBoundingClientRect();
  for (let parent = element.parentElement; parent; parent = parent.parentElement) {
    if (!/(auto|scroll|hidden)/.test(getComputedStyle(parent).overflowY)) continue;
    const frame = parent.getBoundingClientRect();
    if (box.top < frame.top - 1 || box.bottom > frame.bottom + 1) return false;
  }
  return box.top >= 0 && box.bottom <= window.innerHeight;
});
const button = (name) => page.getByRole("button", { name, exact: true });

try {
  await page.goto(url);
  await page.locator("canvas").first().waitFor({ timeout: 90000 });
  await settle(1000);
  seen.spacesBefore = await page.locator("[data-cy=new-panel-btn]").count();
  await shot("1-raw");

  // 1. Concepts: the model and the corpus from dropdowns, the checkpoint opened with FiftyOne's file explorer.
  await operator("compute concepts", "open_clip model");
  seen.corpora = await (async () => {
    await dialog.getByText("Concept corpus", { exact: true }).locator("xpath=following::*[@role='combobox'][1]").click();
    const options = await page.getByRole("option").allInnerTexts();
    await page.keyboard.press("Escape");
    await settle();
    return options;
  })();
  await pick("open_clip model", "inficond-world-vit");
  await pick("Weights", /checkpoint file on the server/);
  await dialog.getByTestId("FolderIcon").first().click();
  const explorer = page.locator("[role=dialog]").last();
  const folder = checkpoint.slice(0, checkpoint.lastIndexOf("/"));
  const file = checkpoint.slice(folder.length + 1);
  const location = explorer.locator("input").first();  // the explorer's folder box, as a user goes to a folder
  await location.fill(folder);
  await location.press("Enter");
  seen.typedInto.push("file explorer: folder");
  await explorer.getByText(file, { exact: true }).click();
  await explorer.getByRole("button", { name: "Choose" }).click();
  await settle();
  await pick("Concept corpus", /synthetic world/);
  await shot("2-concepts-form");
  await execute("concepts", /^Concept vectors of \d+ samples written to /);

  // 2. The teacher: the model's predictions, a label field picked from those the dataset has.
  await operator("import teacher scores", "Source");
  await pick("Label field", "predictions");
  await shot("3-teacher-form");
  await execute("teacher", /^Teacher scores of \d+ samples written to /);

  // 3. Students: every field and the training tag from dropdowns; the workspace opens when trained.
  await operator("train students", "Concepts field");
  await pick("Train on samples tagged", "train");
  seen.trainForm = await dialog.innerText();
  await shot("4-train-form");
  await execute("train", /^Student run students trained/);
  await text(/Selected class: /).waitFor({ timeout: 60000 });
  await settle(1000);
  seen.header = await text(/Selected class: /).innerText();
  await fit("performance");
  await shot("5-workspace");

  // 4. The class the teacher was biased on (airplanes came under clouds), picked in the knowledge tab's
  // class list; 👎 the cloud among its concepts (else its top one) and 👍 another; the chart stays where
  // it was under the pointer.
  await tab("Student knowledge").click();
  await text(/student AP .* run 'students' revision/).waitFor({ timeout: 30000 });
  await settle();
  await page.getByText("Class", { exact: true }).first().locator("xpath=following::*[@role='combobox'][1]").click();
  await page.getByRole("option", { name: "airplane", exact: true }).click();
  await text(/^airplane · student AP /).waitFor({ timeout: 30000 });
  await settle();
  seen.knowledgeHeader = await text(/^airplane · student AP /).innerText();
  const chart = page.locator(".js-plotly-plot").filter({ has: page.locator(".textpoint text", { hasText: "👍" }) }).first();
  const rows = await chart.locator("text").filter({ hasText: /^\d+\. / }).evaluateAll((all) => all.map((t) => t.textContent));
  const cloud = Math.max(0, Number((rows.find((row) => /^\d+\. clouds?$/.test(row)) ?? "1.").split(".")[0]) - 1);
  seen.ranked = rows;
  const before = await chart.boundingBox();
  await clickCentre(thumb("👎", cloud));
  await text(/^Pending /).waitFor({ timeout: 30000 });
  await settle();
  const after = await chart.boundingBox();
  seen.chartMoved = Math.abs(after.y - before.y) + Math.abs(after.x - before.x);
  await clickCentre(thumb("👍", cloud === 0 ? 1 : 0));
  await text(/^Pending .*👎.*👍|^Pending .*👍.*👎/).waitFor({ timeout: 30000 });
  seen.pending = await text(/^Pending /).innerText();
  await fit("knowledge", [["Fine-tune", button("Fine-tune")], ["Clear", button("Clear").last()]]);
  await shot("6-thumbs");
  await button("Fine-tune").click();
  await text(/Revision 1 saved/).waitFor({ timeout: 90000 });
  seen.saved = await text(/Revision 1 saved/).innerText();
  await noTraceback("fine-tune");
  await shot("7-fine-tuned");

  // 5. Provenance: a note on revision 0, written after the fact; then revert to it.
  await tab("Provenance").click();
  await text(/1 fine-tunes/).waitFor({ timeout: 30000 });
  await settle();
  await page.getByText("Note on", { exact: true }).first().locator("xpath=following::*[@role='combobox'][1]").click();
  await page.getByRole("option", { name: "revision 0" }).click();
  await settle();
  const note = page.getByPlaceholder(/^why, e\.g\. /).last();
  await note.pressSequentially("the teacher as it came", { delay: 60 });
  seen.typedInto.push("note");
  await settle(1500);
  await button("Save note").click();
  await text(/^📝 Note on revision 0 saved/).waitFor({ timeout: 30000 });
  seen.noted = await text(/^📝 Note on revision 0 saved/).innerText();
  seen.notedInView = await inView(text(/^📝 Note on revision 0 saved/));
  seen.perClass = await page.getByText(/classes that changed most/).first().innerText();
  await fit("provenance", [["Save note", button("Save note")], ["Revert to it", button("Revert to it")]]);
  await shot("8-noted");
  await button("Revert to it").click();
  await text(/Revision 2 saved: reverted to revision 0/).waitFor({ timeout: 60000 });
  seen.reverted = await text(/Revision 2 saved: reverted to revision 0/).innerText();
  seen.revertedInView = await inView(text(/Revision 2 saved: reverted to revision 0/));
  seen.provenanceRows = await page.getByRole("row").allInnerTexts();
  await noTraceback("revert");
  await shot("9-reverted");

  // Every other tab fits the laptop too, and every tab a larger screen.
  for (const label of ["Concept map", "Concept detail", "Why this image?", "Student performance"]) {
    await tab(label).click();
    await settle(1000);
    await fit(label);
    await noTraceback(label);
  }
  await shot("10-end");
  await page.setViewportSize({ width: 1600, height: 1000 });
  for (const label of ["Student performance", "Student knowledge", "Concept map", "Concept detail", "Why this image?",
    "Provenance"]) {
    await tab(label).click();
    await settle(1000);
    await fit(`${label}@1600`);
  }
} catch (error) {
  seen.error = String(error).slice(0, 800);
  await shot("failed");
} finally {
  console.log(JSON.stringify(seen));
  await browser.close();
}

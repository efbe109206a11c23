// Two colleagues, each with their own App on one database: node colleagues.mjs <my url> <their url>
// <screenshot folder>. Two browsers (contexts: their own storage), both user "local" as open-source
// FiftyOne calls everyone: mine 👍s a concept, theirs 👎s another and saves; their pending list is not
// mine, and my Fine-tune tells me of their save and keeps my 👍 for the next. Prints one JSON line.
import { freshPage, launch, on, settler } from "./app.mjs";

const [myUrl, theirUrl, out] = process.argv.slice(2);
const seen = {};
const browser = await launch();
const [[, mine], [, theirs]] = [await freshPage(browser), await freshPage(browser)];
const settled = new Map([mine, theirs].map((page) => [page, settler(page)]));
const HEADER = /student AP .* run 'students' revision/;
const open = async (page, url) => {
  await page.goto(url);  // an App session's tabs and view are the ones its last browser left
  await on(page).tab("Student knowledge").waitFor({ timeout: 90000 });
  await settled.get(page)(1000);
  await on(page).tab("Student knowledge").click();
  await on(page).text(HEADER).waitFor({ timeout: 60000 });
  await settled.get(page)();
};
const pending = (page) => on(page).text(/^(Pending |No pending instructions)/).innerText();

try {
  await open(mine, myUrl);
  await open(theirs, theirUrl);
  await on(mine).clickCentre(on(mine).thumb("👍", 0));
  await on(mine).text(/^Pending /).waitFor({ timeout: 30000 });
  seen.minePending = await pending(mine);
  await settled.get(theirs)();
  seen.theirsBefore = await pending(theirs);

  await on(theirs).clickCentre(on(theirs).thumb("👎", 1));
  await on(theirs).text(/^Pending /).waitFor({ timeout: 30000 });
  seen.theirsPending = await pending(theirs);
  await theirs.getByRole("button", { name: "Fine-tune" }).click();
  await on(theirs).text(/Revision \d+ saved/).waitFor({ timeout: 60000 });
  seen.theirsSaved = await on(theirs).text(/Revision \d+ saved/).innerText();
  await theirs.screenshot({ path: `${out}/c1-colleague-saved.png` });

  await mine.getByRole("button", { name: "Fine-tune" }).click();
  await on(mine).text(/ saved revision \d+ of 'students' at /).waitFor({ timeout: 30000 });
  seen.mineTold = await on(mine).text(/ saved revision \d+ of 'students' at /).innerText();
  seen.mineKept = await pending(mine);
  await mine.screenshot({ path: `${out}/c2-told-of-colleague.png` });
  await mine.getByRole("button", { name: "Fine-tune" }).click();
  await on(mine).text(/Revision \d+ saved/).waitFor({ timeout: 60000 });
  seen.mineSaved = await on(mine).text(/Revision \d+ saved/).innerText();
  await mine.screenshot({ path: `${out}/c3-mine-saved.png` });
} catch (error) {
  seen.error = String(error).slice(0, 500);
  await mine.screenshot({ path: `${out}/c-failed-mine.png` });
  await theirs.screenshot({ path: `${out}/c-failed-theirs.png` });
} finally {
  console.log(JSON.stringify(seen));
  await browser.close();
}

// Opens the dashboard in headless Chromium, submits a job through the API from the page,
// waits for its progress bar to reach 100% and saves a screenshot.
//   node dashboard.mjs BASE_URL TOKEN SUBMISSION_JSON_FILE SCREENSHOT_PNG
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [base, token, submissionFile, screenshot] = process.argv.slice(2);
const submission = JSON.parse(readFileSync(submissionFile, "utf8"));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  page.on("pageerror", error => console.error("page error:", error.message));
  await page.goto(`${base}/#token=${token}`);
  await page.waitForSelector("#live.on", { timeout: 20_000 });
  const jobId = await page.evaluate(async ({ submission, token }) => {
    const response = await fetch("/api/jobs", {
      method: "POST",
      headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
      body: JSON.stringify(submission),
    });
    if (!response.ok) throw new Error("submit: HTTP " + response.status + " " + (await response.text()));
    return (await response.json()).job_id;
  }, { submission, token });
  console.log("submitted", jobId);
  await page.waitForSelector(`tr[data-job="${jobId}"]`, { timeout: 20_000 });
  await page.waitForFunction(
    id => document.querySelector(`tr[data-job="${id}"] .percent`)?.textContent === "100%",
    jobId,
    { timeout: 120_000, polling: 200 },
  );
  const [filled, whole] = await page.$eval(`tr[data-job="${jobId}"] .bar`, bar =>
    [bar.firstElementChild.getBoundingClientRect().width, bar.getBoundingClientRect().width]);
  if (!(whole > 0 && filled >= whole - 1)) throw new Error(`the bar is drawn ${filled} of ${whole} px wide`);
  await page.waitForFunction(() => document.querySelectorAll("#credit tr td").length > 1, null, { timeout: 20_000 });
  // The job's name is markup a stranger chose: it must show as text and run nothing.
  const shown = await page.$eval(`tr[data-job="${jobId}"] td`, cell => cell.textContent);
  if (!shown.includes(submission.name)) throw new Error(`the job name is not shown as text: ${shown}`);
  if (await page.evaluate(() => window.__pwned !== undefined)) throw new Error("markup from the network ran in the page");
  if (await page.evaluate(() => localStorage.length) !== 0) throw new Error("the page stored something in localStorage");
  console.log("markup shown as text, nothing ran, nothing in localStorage");
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log("progress 100%; screenshot", screenshot);
} finally {
  await browser.close();
}

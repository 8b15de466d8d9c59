// foreman's web view in a real browser (Debian's Chromium driven by playwright-core), for
// tests/it/browser.rs: sign in through the fake GitHub, see only the readable repositories,
// open the running objective, follow the manager's transcript live in a second tab while a
// message is sent to it, and stop the objective. Screenshots of each page go to $SHOTS.
//
// Environment: PLAYWRIGHT (the directory playwright-core is installed under), CHROMIUM,
// FOREMAN_URL, OBJECTIVE, MANAGER, SHOTS. Exits 0 when every step held, 1 (saying which)
// when one did not.
import { createRequire } from "node:module";

const require = createRequire(process.env.PLAYWRIGHT + "/node_modules/");
const { chromium } = require("playwright-core");

const base = process.env.FOREMAN_URL;
const objective = process.env.OBJECTIVE;
const manager = process.env.MANAGER;
const shots = process.env.SHOTS;

function check(ok, what) {
  if (!ok) throw new Error(what);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  args: ["--no-sandbox"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();

  // Signing in: foreman sends the browser to GitHub and GitHub sends it back.
  await page.goto(base + "/objectives");
  check(page.url() === base + "/objectives", "signed in and back on the objectives: " + page.url());
  const list = await page.content();
  check(list.includes("Widgets break"), "the readable repository's objective is listed");
  check(!list.includes("Secret plans"), "the unreadable repository's objective is not listed");
  await page.screenshot({ path: shots + "/objectives.png", fullPage: true });

  // The objective, reached by its link.
  await page.click("text=Widgets break");
  await page.waitForURL(base + "/objectives/" + objective);
  await page.screenshot({ path: shots + "/objective.png", fullPage: true });

  // The manager's transcript in a second tab, never reloaded.
  const transcript = await context.newPage();
  await transcript.goto(base + "/sessions/" + manager);
  await transcript.waitForSelector("text=planning the widgets");
  check(!(await transcript.content()).includes("got the message"), "the message has not arrived yet");

  // A message to the manager from the objective's page: its next turn shows up live.
  await page.fill("#message", "Please use blue.");
  await page.click("text=Send");
  await page.waitForURL(base + "/objectives/" + objective);
  await transcript.waitForSelector("text=got the message", { timeout: 30000 });
  const navigations = await transcript.evaluate(() => performance.getEntriesByType("navigation").length);
  check(navigations === 1, "the transcript grew without a reload");
  await transcript.screenshot({ path: shots + "/session.png", fullPage: true });

  // Stopped from the page.
  await page.click("text=Stop this objective");
  await page.waitForSelector("h1 .badge.cancelled");
  await page.screenshot({ path: shots + "/stopped.png", fullPage: true });
  console.log("every step held");
} catch (e) {
  console.error("the browser test failed: " + e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}

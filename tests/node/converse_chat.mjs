// Converse.js in a real headless Chromium (Debian's, launched through playwright-core by its
// path; playwright never downloads a browser here) logs in over WebSocket and chats with a peer
// that the test drives (slixmpp on TCP):
//   node converse_chat.mjs '{"chromium": "/usr/bin/chromium", "page_url": ".../conversejs",
//     "websocket_url": "ws://...", "jid": "alice@localhost", "password": ..., "peer": "bob@localhost",
//     "body": ..., "reply": ..., "user_data_dir": ..., "artifacts": ..., "timeout_ms": 30000}'
// Prints JSON lines: {"event": "online", "jid"} once Converse is connected, {"event": "sent"}
// after typing `body` into the chat with `peer` and pressing Enter, {"event": "received"} once
// `reply` shows in that chat. On any failure or the deadline: a screenshot in
// <artifacts>/failure.png, a message on stderr naming it, exit 1. The browser console (and page
// errors, failed requests, WebSocket events) is written to <artifacts>/console.log throughout.

import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const config = JSON.parse(process.argv[2]);
const started = Date.now();
const remaining = () => Math.max(1000, config.timeout_ms - (Date.now() - started));
fs.mkdirSync(config.artifacts, { recursive: true });
const consoleLog = fs.createWriteStream(path.join(config.artifacts, "console.log"));
const screenshot = path.join(config.artifacts, "failure.png");
let context = null;
let page = null;
let step = "launching Chromium";

function emit(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

function note(line) {
  consoleLog.write(`${((Date.now() - started) / 1000).toFixed(3)} ${line}\n`);
}

async function bounded(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

let failing = false;

async function fail(error) {
  if (failing) return; // one report: the deadline may fire while a step is failing too
  failing = true;
  if (page !== null) {
    try {
      // Converse's named promises that never resolved often say what it is waiting for
      const pending = await bounded(
        page.evaluate(() =>
          Object.entries(window.minixmpp?.converse?.promises ?? {})
            .filter(([, promise]) => !promise.isResolved)
            .map(([name]) => name),
        ),
        5000,
        "reading Converse's promises",
      );
      note(`Converse promises still pending: ${pending.join(", ") || "none"}`);
    } catch (err) {
      note(`Converse promises unknown: ${err.message}`);
    }
  }
  let shot = "no screenshot (no page)";
  if (page !== null) {
    try {
      await bounded(page.screenshot({ path: screenshot, fullPage: true }), 10000, "screenshot");
      shot = `screenshot ${screenshot}`;
    } catch (err) {
      shot = `no screenshot (${err.message})`;
    }
  }
  process.stderr.write(
    `converse_chat: failed while ${step}: ${error.stack ?? error}\n` +
      `converse_chat: ${shot}; browser console ${path.join(config.artifacts, "console.log")}\n`,
  );
  await close();
  process.exit(1);
}

async function close() {
  if (context !== null) {
    const closing = context;
    context = null;
    try {
      await bounded(closing.close(), 10000, "closing Chromium");
    } catch (err) {
      process.stderr.write(`converse_chat: ${err.message}\n`);
    }
  }
  await new Promise((resolve) => consoleLog.end(resolve));
}

const deadline = setTimeout(
  () => fail(new Error(`not done within ${config.timeout_ms} ms`)),
  config.timeout_ms,
);
// The test ends the script with SIGTERM when it gives up on its side: keep the picture then too.
process.on("SIGTERM", () => fail(new Error("stopped by the test (SIGTERM)")));

try {
  context = await chromium.launchPersistentContext(config.user_data_dir, {
    executablePath: config.chromium,
    headless: true,
    timeout: remaining(),
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  // Only the server's own origin: Converse's pages also link images on the web (sponsors'
  // logos), which must not be fetched from a test.
  const origin = new URL(config.page_url).origin;
  await context.route(
    (url) => url.origin !== origin,
    (route) => {
      note(`blocked: ${route.request().url()}`);
      return route.abort("blockedbyclient");
    },
  );
  page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (msg) => note(`console.${msg.type()}: ${msg.text()}`));
  page.on("pageerror", (err) => note(`pageerror: ${err.name}: ${err.message}\n${err.stack}`));
  page.on("response", (res) => res.status() >= 400 && note(`HTTP ${res.status()}: ${res.url()}`));
  page.on("requestfailed", (req) => note(`requestfailed: ${req.url()} ${req.failure()?.errorText}`));
  page.on("websocket", (ws) => {
    note(`websocket open: ${ws.url()}`);
    ws.on("close", () => note(`websocket closed: ${ws.url()}`));
    ws.on("socketerror", (err) => note(`websocket error: ${err}`));
  });

  step = `loading ${config.page_url}`;
  await page.goto(config.page_url, { waitUntil: "load", timeout: remaining() });

  step = "initializing Converse";
  await page.evaluate((settings) => {
    window.minixmpp = { connected: false };
    window.converse.plugins.add("minixmpp-test", {
      initialize() {
        const { api } = this._converse;
        window.minixmpp.api = api;
        window.minixmpp.converse = this._converse;
        api.listen.on("connected", () => {
          window.minixmpp.connected = true;
        });
      },
    });
    window.converse.initialize({
      ...settings,
      whitelisted_plugins: ["minixmpp-test"],
      assets_path: "/conversejs/dist/",
      auto_login: true,
      auto_reconnect: false,
      discover_connection_methods: false,
      allow_non_roster_messaging: true,
      view_mode: "fullscreen",
      i18n: "en",
      loglevel: "debug",
      play_sounds: false,
      show_desktop_notifications: false,
    });
  }, {
    websocket_url: config.websocket_url,
    jid: config.jid,
    password: config.password,
  });

  step = `logging in as ${config.jid} over ${config.websocket_url}`;
  await page.waitForFunction(() => window.minixmpp.connected, null, { timeout: remaining() });
  const jid = await page.evaluate(() => window.minixmpp.api.connection.get().jid);
  emit({ event: "online", jid });

  step = `opening a chat with ${config.peer} and typing into it`;
  await page.evaluate(async (peer) => {
    await window.minixmpp.api.chats.open(peer, {}, true); // not returned: a model, not data
  }, config.peer);
  const chat = page.locator(`converse-chat[jid="${config.peer}"]`);
  const textarea = chat.locator("textarea.chat-textarea");
  await textarea.fill(config.body, { timeout: remaining() });
  await textarea.press("Enter", { timeout: remaining() });
  await chat
    .locator(".chat-msg__text", { hasText: config.body })
    .waitFor({ state: "visible", timeout: remaining() });
  emit({ event: "sent" });

  step = `waiting for ${JSON.stringify(config.reply)} from ${config.peer} in the chat`;
  await chat
    .locator(".chat-msg__text", { hasText: config.reply })
    .waitFor({ state: "visible", timeout: remaining() });
  emit({ event: "received" });
  clearTimeout(deadline);
  await close();
} catch (err) {
  clearTimeout(deadline);
  await fail(err);
}

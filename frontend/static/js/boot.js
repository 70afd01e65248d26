// Starts the page the server sent: each page names itself in <main data-page="...">. The pages
// carry no inline script (the Content-Security-Policy allows scripts from this server only), so
// this module, loaded by frontend/shell.html, is where each page's code is called from.

const PAGES = {
  runs: async () => (await import("./runs.js")).mountRunsPage(),
  compare: async () => (await import("./compare.js")).mountComparePage(),
  lab: async () => (await import("./lab.js")).mountLabPage(),
  login: async () => (await import("./login.js")).mountLoginPage(),
  run: mountRunOrShare,
};

/** One page for /runs/<id> and, read-only and without login, /share/<token>. */
async function mountRunOrShare() {
  const { mountRunPage, runSource, shareSource } = await import("./run.js");
  const [kind, key] = location.pathname.split("/").filter(Boolean);
  if (kind === "share") document.title = "Shared run · PCM Lab";
  await mountRunPage(kind === "share" ? shareSource(decodeURIComponent(key)) : runSource(key));
}

const page = document.getElementById("main")?.dataset.page;
if (page in PAGES) PAGES[page]();

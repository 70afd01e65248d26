// Starts the page the server sent: each page names itself in <main data-page="...">. The pages
// carry no inline script (the Content-Security-Policy allows scripts from this server only), so
// this module, loaded by frontend/shell.html, is where each page's code is called from.

const PAGES = {
  runs: async () => {
    // the runs list first: it sends a caller without a session to the login page, so the sweeps
    // list never asks the API without one
    await (await import("./runs.js")).mountRunsPage();
    (await import("./sweeplist.js")).mountSweepList().catch((err) => console.warn("sweeps list failed:", err));
  },
  compare: async () => (await import("./compare.js")).mountComparePage(),
  lab: async () => (await import("./lab.js")).mountLabPage(),
  login: async () => (await import("./login.js")).mountLoginPage(),
  run: mountRunOrShare,
  sweep: async () => (await import("./sweep.js")).mountSweepPage(), // /sweeps/<id> and /share/sweeps/<token>
  workers: async () => (await import("./workers.js")).mountWorkersPage(),
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

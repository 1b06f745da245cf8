// The installable app's service worker. It keeps the shell (the stylesheet, the scripts, the
// theme's files) so the app opens and says it is offline when the network is gone; it never
// keeps pages, answers, documents or anything from the API. Online, everything comes from the
// server first, so a new version or theme shows at once. VERSION is this server's build.
const CACHE = "shell-VERSION";
const SHELL = SHELL_FILES;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

function isShell(url) {
  return url.pathname.startsWith("/static/") || url.pathname === "/theme.css" || url.pathname.startsWith("/theme/");
}

function offlinePage() {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Offline</title>
<link rel="stylesheet" href="/theme.css"><link rel="stylesheet" href="/static/app.css"></head>
<body><main class="centered"><div class="card login"><h1>You are offline</h1>
<p>This app answers from your company's servers; it needs the network. Try again once you are connected.</p>
<p><a href="/chat">Try again</a></p></div></main></body></html>`;
  return new Response(html, { status: 503, headers: { "Content-Type": "text/html; charset=utf-8" } });
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (request.mode === "navigate") {
    // Pages are never kept: offline, a page saying so.
    event.respondWith(fetch(request).catch(offlinePage));
    return;
  }
  if (!isShell(url)) return;
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(url.pathname, copy));
        }
        return response;
      })
      .catch(() => caches.match(url.pathname).then((hit) => hit || Response.error())),
  );
});

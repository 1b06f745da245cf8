// Calls to Ayush's JSON API from the pages (the session cookie and the same-origin check
// stand for the CSRF token on JSON requests).

/// A JSON request; a failure throws the server's own message.
export async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(await errorText(res));
  return res;
}

/// The message of an error answer, whatever its shape.
export async function errorText(res) {
  try {
    return (await res.json()).error.message;
  } catch {
    return `The server answered ${res.status}.`;
  }
}

/// Polls an ingestion job until it ends, telling `show` each state it passes through; the
/// job as it ended.
export async function followJob(job, show) {
  while (job.status === "queued" || job.status === "running") {
    show(job);
    await new Promise((ok) => setTimeout(ok, 700));
    const res = await fetch(`/api/jobs/${job.id}`);
    if (!res.ok) return { ...job, status: "failed", error: `the server answered ${res.status}` };
    job = await res.json();
  }
  return job;
}

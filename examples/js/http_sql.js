// Fetch a JSON document over HTTP (at least once, recorded) and store it with SQL in
// the worker's database (exactly once: the rows and the record commit together).
//
//   durable run examples/js/http_sql.js --input '"https://example.org/data.json"'
import { workflow, http, transaction } from "durable";

export const run = workflow((url) => {
  const response = http.get(url, { timeout: 30 });
  if (response.status !== 200) {
    throw new Error(`GET ${url}: HTTP ${response.status}`);
  }
  const body = response.text();
  const count = transaction("store", (tx) => {
    tx.execute("CREATE TABLE IF NOT EXISTS fetched (url TEXT, body TEXT, at TEXT)");
    tx.execute("INSERT INTO fetched (url, body, at) VALUES (?, ?, ?)", [
      url,
      body,
      new Date(Date.now()).toISOString(),
    ]);
    return tx.query("SELECT count(*) AS n FROM fetched WHERE url = ?", [url])[0].n;
  });
  console.log(`stored ${body.length} bytes from ${url}; ${count} copies so far`);
  return { status: response.status, bytes: body.length, copies: count };
});

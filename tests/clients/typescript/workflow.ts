// The scheduler's whole workflow through a TypeScript client that
// @hey-api/openapi-ts generated from polysync's OpenAPI document
// (tests/tests/serve_e2e.rs generates it into ./gen, type-checks this file
// against it with tsc, and runs it): sync, entries, run, repeat with the same
// key, the status stream to its end (the generated SSE client), logs, events,
// cancel, and every error kind a caller can cause.
//
// Usage: node out/workflow.js BASE_URL TOKEN

import { createClient } from "./gen/client";
import {
  cancelRun,
  createRun,
  getEntry,
  getRun,
  getSync,
  listConnections,
  listEntries,
  listRuns,
  runEvents,
  runLogs,
  runStatusStream,
  startSync,
} from "./gen/sdk.gen";
import type { CreateRun, EventView, Problem, RunView } from "./gen/types.gen";

const [base, token] = process.argv.slice(2);
const client = createClient({ baseUrl: base, auth: token });

function check(ok: unknown, what: string, detail?: unknown): asserts ok {
  if (!ok) {
    throw new Error(`${what}: ${JSON.stringify(detail)}`);
  }
}

function step(what: string): void {
  console.log(`ok: ${what}`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An error answer: its status and a problem document of `kind`. */
function problem(result: { error?: unknown; response: Response }, status: number, kind: string): Problem {
  const p = result.error as Problem;
  check(result.response.status === status, `status ${status}`, { got: result.response.status, p });
  check(result.response.headers.get("content-type") === "application/problem+json", "a problem document", p);
  check(p.kind === kind && p.type === `/v1/problems/${kind}` && p.detail.length > 0, `kind ${kind}`, p);
  return p;
}

async function main(): Promise<void> {
  const connections = await listConnections({ client });
  check(connections.data?.map((c) => c.name).join() === "sandbox", "connections", connections.data);
  step("connections");

  const started = await startSync({ client, path: { name: "sandbox" } });
  check(started.response.status === 202 && started.data, "sync started", started.error);
  check(started.response.headers.get("location") === started.data.links.self, "Location", started.data);
  const deadline = Date.now() + 60_000;
  let sync = started.data;
  while (sync.status !== "complete") {
    check(sync.status === "running" && Date.now() < deadline, "sync runs", sync);
    await sleep(200);
    sync = (await getSync({ client, path: { id: sync.id } })).data!;
  }
  step(`sync #${sync.id}: ${sync.seen} entries`);

  const page = (await listEntries({ client, query: { connection: "sandbox", limit: 2 } })).data!;
  check(page.entries.length === 2 && page.next_after, "first page", page);
  const rest = (await listEntries({ client, query: { connection: "sandbox", after: page.next_after } })).data!;
  const ids = [...page.entries, ...rest.entries].map((e) => e.entry);
  const cron = ids.find((id) => id.startsWith("cronjob/"));
  check(cron && ids.includes("report"), "entries", ids);
  // The generated client escapes the slash (`%2F`) in the path.
  const byId = await getEntry({ client, path: { name: "sandbox", entry: cron } });
  check(byId.data?.entry === cron, "an entry with a slash", byId.error);
  step(`entries: ${ids.length}, ${cron} by its id`);

  const request: CreateRun = {
    connection: "sandbox",
    entry: "report",
    parameters: { TARGET: "typescript", DB_PASSWORD: "s3cret" },
  };
  const headers = { "Idempotency-Key": "ts-run-1" };
  const first = await createRun({ client, body: request, headers });
  check(first.response.status === 201 && first.data, "created", first.error);
  const run: RunView = first.data;
  check(first.response.headers.get("location") === run.links.self, "Location", run);
  check(run.parameters.DB_PASSWORD === "<redacted>" && !run.final && run.exit_code === null, "a fresh run", run);
  const again = await createRun({ client, body: request, headers });
  check(again.response.status === 200 && again.data?.id === run.id, "the same run", again.data);
  step(`run #${run.id} created, the same run again`);

  // The generated SSE client: each event's data, parsed, until the stream ends.
  const statuses: RunView[] = [];
  const { stream } = await runStatusStream({ client, path: { id: run.id }, sseMaxRetryAttempts: 1 });
  for await (const data of stream) {
    statuses.push(data as RunView);
  }
  const last = statuses[statuses.length - 1];
  check(last?.state === "Success" && last.final, "the stream ends with the final status", statuses);
  step(`status stream: ${statuses.map((s) => s.state).join(" > ")}`);

  const done = (await getRun({ client, path: { id: run.id } })).data!;
  check(done.exit_code === 0 && done.outputs.ROWS === "7" && done.started_at !== null, "an ended run", done);
  check(Date.parse(done.finished_at!) >= Date.parse(done.started_at!), "started before it finished", done);
  const logs = await runLogs({ client, path: { id: run.id }, parseAs: "text" });
  check(typeof logs.data === "string" && logs.data.includes("report for typescript"), "logs", logs.data);
  const events: EventView[] = [];
  const platform = await runEvents({ client, path: { id: run.id }, sseMaxRetryAttempts: 1 });
  for await (const data of platform.stream) {
    events.push(data as EventView);
  }
  check(events.length > 0 && events.every((e) => e.platform_id === done.platform_id), "events", events);
  const listed = (await listRuns({ client, query: { entry: "report", state: "Success" } })).data!;
  check(listed.runs.map((r) => r.id).join() === String(run.id), "listed by entry and state", listed);
  step(`run #${run.id}: exit 0, outputs, logs, ${events.length} events`);

  const long = (await createRun({ client, body: { connection: "sandbox", entry: "long" } })).data!;
  const until = Date.now() + 60_000;
  while ((await getRun({ client, path: { id: long.id } })).data!.state !== "Running") {
    check(Date.now() < until, "the long run runs", long);
    await sleep(100);
  }
  const cancelled = (await cancelRun({ client, path: { id: long.id } })).data!;
  check(cancelled.outcome === "Cancelled" && cancelled.run.reason === "CancelledByUser", "cancelled", cancelled);
  const twice = (await cancelRun({ client, path: { id: long.id } })).data!;
  check(twice.outcome === "AlreadyDone", "cancelled again", twice);
  step(`run #${long.id} cancelled`);

  problem(await getRun({ client, path: { id: 999999 } }), 404, "not_found");
  problem(await listRuns({ client, query: { limit: 0 } }), 400, "invalid_input");
  const other = { ...request, parameters: { TARGET: "else" } };
  problem(await createRun({ client, body: other, headers }), 409, "conflict");
  problem(await createRun({ client, body: { ...request, parameters: { NOPE: "1" } } }), 422, "invalid_input");
  problem(await createRun({ client, body: { ...request, startup_timeout: "soon" } }), 400, "invalid_input");
  const huge = { ...request, parameters: { TARGET: "x".repeat(70_000) } };
  problem(await createRun({ client, body: huge }), 413, "invalid_input");
  const anonymous = createClient({ baseUrl: base });
  problem(await listRuns({ client: anonymous }), 401, "unauthenticated");
  step("errors: 400, 401, 404, 409, 413, 422 as problem documents");
  console.log("workflow complete");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

#!/usr/bin/env node
// A small Node.js client of moneymovement: opens a funding account and a wallet, moves an
// amount larger than 2^53 minor units into the wallet, reads the balance back exactly,
// reads a rejection's google.rpc.ErrorInfo reason from the grpc-status-details-bin trailer,
// then reads the events of its changes back from the event stream (WatchEvents).
//
//   MM_ADDRESS=127.0.0.1:50051 MM_TOKEN=... node example.js
//
// Prints one JSON object and exits 0, or prints the problem to stderr and exits 1.
//
//   MM_ADDRESS=... MM_TOKEN=... node example.js tail [--after CURSOR | --from oldest]
//
// follows the tenant's events (from now by default) and prints each as one JSON line, for
// ever: when the stream breaks with UNAVAILABLE (the server stops or restarts, the
// connection is lost) it reconnects and resumes after the last cursor it handled, so no
// event is printed twice or missed. Ctrl-C ends it (exit 0). See followEvents below.
// The protos are loaded at run time from ../../protos; google/rpc/*.proto come from
// MM_PROTO_PATH (directories separated by ':') or the project's Python virtual environment
// (googleapis-common-protos ships them), see docs/clients.md.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const ROOT = path.resolve(__dirname, '..', '..');
const AMOUNT = '9007199254740993'; // 2^53 + 1: not representable as a JS number.
const DEADLINE_MS = 10_000;
const RETRYABLE = new Set([
  grpc.status.UNAVAILABLE,
  grpc.status.ABORTED,
  grpc.status.DEADLINE_EXCEEDED,
]);
// A server that is down is tried again at most this often (grpc-js's default backoff grows
// to 120 s: a consumer would see a restarted server minutes late).
const CHANNEL_OPTIONS = { 'grpc.max_reconnect_backoff_ms': 2000 };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Directories to resolve imports from: our protos, then google/rpc and google/protobuf.
function includeDirs() {
  const dirs = [path.join(ROOT, 'protos')];
  if (process.env.MM_PROTO_PATH) {
    dirs.push(...process.env.MM_PROTO_PATH.split(path.delimiter).filter(Boolean));
  }
  const lib = path.join(ROOT, '.venv', 'lib');
  if (fs.existsSync(lib)) {
    for (const python of fs.readdirSync(lib).filter((name) => name.startsWith('python3'))) {
      const sitePackages = path.join(lib, python, 'site-packages');
      dirs.push(sitePackages); // googleapis-common-protos: google/rpc/*.proto
      dirs.push(path.join(sitePackages, 'grpc_tools', '_proto')); // google/protobuf/*.proto
    }
  }
  return dirs.filter((dir) => fs.existsSync(dir));
}

function findProto(dirs, name) {
  const dir = dirs.find((candidate) => fs.existsSync(path.join(candidate, name)));
  if (!dir) {
    throw new Error(
      `${name} not found in ${dirs.join(', ')}; run any make target (it installs ` +
        "googleapis-common-protos into .venv) or set MM_PROTO_PATH to a directory holding it",
    );
  }
  return path.join(dir, name);
}

// The google.rpc types, for decoding grpc-status-details-bin (proto-loader has no decoder).
function loadStatusTypes(dirs) {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target;
    const dir = dirs.find((candidate) => fs.existsSync(path.join(candidate, target)));
    return dir ? path.join(dir, target) : target; // protobufjs bundles google/protobuf/*
  };
  root.loadSync([
    findProto(dirs, 'google/rpc/status.proto'),
    findProto(dirs, 'google/rpc/error_details.proto'),
  ]);
  root.resolveAll();
  return root;
}

// What a failed call says: its code, and the details of its google.rpc.Status.
function describeError(error, statusTypes) {
  const described = {
    code: grpc.status[error.code] ?? String(error.code),
    code_number: error.code,
    message: error.details,
  };
  const [raw] = error.metadata ? error.metadata.get('grpc-status-details-bin') : [];
  if (!raw) return described;
  const Status = statusTypes.lookupType('google.rpc.Status');
  const status = Status.decode(raw);
  described.details = status.details.map((any) => {
    const typeName = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
    let type;
    try {
      type = statusTypes.lookupType(typeName);
    } catch {
      return { type: typeName };
    }
    return { type: typeName, ...type.toObject(type.decode(any.value), { longs: String }) };
  });
  const info = described.details.find((detail) => detail.type === 'google.rpc.ErrorInfo');
  if (info) {
    described.reason = info.reason;
    described.domain = info.domain;
    described.metadata = info.metadata ?? {};
  }
  return described;
}

// One unary call with a deadline; transient failures are retried with the same request
// (hence the same request_id), which the server answers at most once.
async function call(client, method, request, metadata) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await new Promise((resolve, reject) => {
        const deadline = new Date(Date.now() + DEADLINE_MS);
        client[method](request, metadata, { deadline }, (error, response) =>
          error ? reject(error) : resolve(response),
        );
      });
    } catch (error) {
      if (attempt >= 4 || !RETRYABLE.has(error.code)) throw error;
      await sleep(100 * 2 ** attempt);
    }
  }
}

// A resumable consumer of EventService.WatchEvents. Calls `handle(response)` (awaited) for
// each response in order: its `events` (none in a heartbeat) and the `cursor` covering
// them. When the stream fails with UNAVAILABLE (the server shuts down, SHUTTING_DOWN, or
// restarts; the connection is lost), ABORTED or DEADLINE_EXCEEDED, it reopens it with
// after_cursor = the cursor of the last response handled, with backoff: every event is
// handled once, in order. Other errors (OUT_OF_RANGE / CURSOR_EXPIRED, INVALID_ARGUMENT,
// UNAUTHENTICATED) are thrown. Resolves when `handle` returns true, with that response's
// cursor: save it, and pass it as `after_cursor` to continue later.
//
// Without after_cursor and from now, "now" is fixed as a cursor first (ListEvents), so
// that a stream broken before its first response does not skip what came meanwhile.
async function followEvents(service, request, metadata, handle, { onReconnect } = {}) {
  const { after_cursor: after, start, ...rest } = request;
  let cursor = after || '';
  if (!cursor && start !== 'EVENT_START_OLDEST') {
    const page = await call(service, 'ListEvents', { ...rest, start: 'EVENT_START_NOW' }, metadata);
    if (page.events.length > 0 && (await handle({ events: page.events, cursor: page.next_cursor }))) {
      return page.next_cursor;
    }
    cursor = page.next_cursor;
  }
  for (let failures = 0; ; ) {
    const stream = service.WatchEvents(
      cursor ? { ...rest, after_cursor: cursor } : { ...rest, start: 'EVENT_START_OLDEST' },
      metadata,
    );
    stream.on('error', () => {}); // seen by the loop below; cancel() emits one too
    let problem;
    try {
      for await (const response of stream) {
        failures = 0;
        if (await handle(response)) return response.cursor;
        cursor = response.cursor; // handled: a reconnection starts after it
      }
    } catch (error) {
      if (!RETRYABLE.has(error.code)) throw error;
      problem = error;
    } finally {
      stream.cancel();
    }
    failures += 1;
    const pauseMs = Math.random() * Math.min(2000, 50 * 2 ** failures);
    if (onReconnect) onReconnect(problem, cursor, pauseMs);
    await sleep(pauseMs);
  }
}

// `example.js tail`: every event as one JSON line, until Ctrl-C.
async function tail(events, metadata, statusTypes, args) {
  const request = {};
  for (let i = 0; i < args.length; i += 2) {
    if (args[i] === '--after') request.after_cursor = args[i + 1];
    else if (args[i] === '--from') request.start = `EVENT_START_${args[i + 1].toUpperCase()}`;
    else throw new Error(`usage: example.js tail [--after CURSOR | --from now|oldest]`);
  }
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
  await followEvents(events, request, metadata, (response) => {
    for (const event of response.events) process.stdout.write(`${JSON.stringify(event)}\n`);
    return false;
  }, {
    onReconnect: (error, cursor, pauseMs) => {
      const why = error ? JSON.stringify(describeError(error, statusTypes)) : 'the stream ended';
      console.error(`example.js tail: ${why}; reconnecting after cursor ${cursor} in ${Math.round(pauseMs)} ms`);
    },
  });
}

async function main() {
  const address = process.env.MM_ADDRESS || '127.0.0.1:50051';
  const token = process.env.MM_TOKEN;
  if (!token) throw new Error('set MM_TOKEN to a tenant token (make run prints one)');

  const dirs = includeDirs();
  const statusTypes = loadStatusTypes(dirs);
  const definition = protoLoader.loadSync(
    [
      'moneymovement/v1/account_service.proto',
      'moneymovement/v1/balance_service.proto',
      'moneymovement/v1/money_movement_service.proto',
      'moneymovement/v1/event_service.proto',
    ],
    {
      keepCase: true, // field names as in the protos: amount_minor
      longs: String, // int64 as decimal strings: exact beyond 2^53
      enums: String,
      defaults: true,
      oneofs: true,
      includeDirs: dirs,
    },
  );
  const v1 = grpc.loadPackageDefinition(definition).moneymovement.v1;
  const credentials = grpc.credentials.createInsecure();
  const accounts = new v1.AccountService(address, credentials);
  const balances = new v1.BalanceService(address, credentials);
  const movements = new v1.MoneyMovementService(address, credentials);
  const events = new v1.EventService(address, credentials, CHANNEL_OPTIONS);

  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${token}`);

  try {
    if (process.argv[2] === 'tail') {
      await tail(events, metadata, statusTypes, process.argv.slice(3));
      return;
    }
    // Where the stream is before our changes: their events all come after this cursor.
    const { next_cursor: before } = await call(events, 'ListEvents', {
      start: 'EVENT_START_NOW',
      page_size: 1,
    }, metadata);

    const funding = (
      await call(accounts, 'CreateAccount', {
        request_id: crypto.randomUUID(),
        name: 'Node example funding',
        currency_code: 'USD',
        normal_balance: 'NORMAL_BALANCE_DEBIT',
        overdraft_mode: 'OVERDRAFT_MODE_UNLIMITED',
      }, metadata)
    ).account;
    const wallet = (
      await call(accounts, 'CreateAccount', {
        request_id: crypto.randomUUID(),
        name: 'Node example wallet',
        currency_code: 'USD',
        normal_balance: 'NORMAL_BALANCE_CREDIT',
      }, metadata)
    ).account;

    // int64 fields are sent and received as decimal strings: no precision is lost.
    const { transfer } = await call(movements, 'CreateTransfer', {
      request_id: crypto.randomUUID(),
      debit_account_id: funding.id,
      credit_account_id: wallet.id,
      amount_minor: AMOUNT,
      currency_code: 'USD',
    }, metadata);
    if (transfer.amount_minor !== AMOUNT) {
      throw new Error(`transfer amount_minor is ${transfer.amount_minor}, expected ${AMOUNT}`);
    }

    const { balance } = await call(balances, 'GetBalance', { account_id: wallet.id }, metadata);
    if (balance.posted_minor !== AMOUNT) {
      throw new Error(`wallet posted_minor is ${balance.posted_minor}, expected ${AMOUNT}`);
    }

    // One minor unit more than the wallet holds: rejected with INSUFFICIENT_FUNDS.
    let rejection;
    try {
      await call(movements, 'CreateTransfer', {
        request_id: crypto.randomUUID(),
        debit_account_id: wallet.id,
        credit_account_id: funding.id,
        amount_minor: (BigInt(AMOUNT) + 1n).toString(),
        currency_code: 'USD',
      }, metadata);
    } catch (error) {
      if (typeof error.code !== 'number') throw error;
      rejection = describeError(error, statusTypes);
    }
    if (!rejection) throw new Error('moving more than the wallet holds was accepted');
    if (rejection.code !== 'FAILED_PRECONDITION' || rejection.reason !== 'INSUFFICIENT_FUNDS') {
      throw new Error(`unexpected rejection: ${JSON.stringify(rejection)}`);
    }

    // Our changes as events, read back from the stream after the cursor taken before them
    // (other callers' events, if any, are skipped). The rejection changed nothing: no event.
    const ours = new Set([funding.id, wallet.id]);
    const seen = [];
    let reconnections = 0;
    const watching = followEvents(events, { after_cursor: before }, metadata, (response) => {
      for (const event of response.events) {
        const id = event.transfer ? event.transfer.id : event.account && event.account.id;
        if (!ours.has(id) && id !== transfer.id) continue;
        seen.push({ cursor: event.cursor, type: event.type, request_id: event.request_id, id });
        if (id === transfer.id) return true; // the last of ours
      }
      return false;
    }, { onReconnect: () => { reconnections += 1; } });
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('the events did not come within 10 s')), 10_000);
    });
    const lastCursor = await Promise.race([watching, timeout]).finally(() => clearTimeout(timer));

    console.log(
      JSON.stringify({
        funding_account_id: funding.id,
        wallet_account_id: wallet.id,
        transfer_id: transfer.id,
        transfer_amount_minor: transfer.amount_minor,
        wallet_balance: {
          posted_minor: balance.posted_minor,
          available_minor: balance.available_minor,
        },
        rejection: {
          code: rejection.code,
          code_number: rejection.code_number,
          reason: rejection.reason,
          domain: rejection.domain,
          metadata: rejection.metadata,
        },
        events: seen,
        events_cursor: lastCursor,
        events_reconnections: reconnections,
      }),
    );
  } catch (error) {
    // A failed call: show what the server said, details included.
    if (typeof error.code === 'number') {
      throw new Error(`call failed: ${JSON.stringify(describeError(error, statusTypes))}`);
    }
    throw error;
  } finally {
    for (const client of [accounts, balances, movements, events]) client.close();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`example.js: ${error.message}`);
    process.exit(1);
  },
);

// A TypeScript client of moneymovement: protobuf-es types generated from the protos
// (`npm run generate`, into src/gen/) and Connect's gRPC transport for Node.js.
//
//   MM_ADDRESS=127.0.0.1:50051 MM_TOKEN=... node dist/example.js     (after npm run build)
//
// A short story through all four services: opens a funding account, a wallet and a
// merchant (AccountService); moves 2^53 + 1 minor units into the wallet, an amount a
// JavaScript number cannot hold, as a bigint (MoneyMovementService); places a hold on the
// wallet and captures part of it; reads the balances back (BalanceService); is refused
// twice, reading each refusal's google.rpc.ErrorInfo from the status details; and follows
// the event stream over its own changes (EventService). Prints one JSON object (int64
// values as decimal strings) and exits 0, or prints the problem to stderr and exits 1.
import { randomUUID } from 'node:crypto';

import { durationFromMs } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, createClient, type Interceptor } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';

import { BadRequestSchema, ErrorInfoSchema } from './gen/google/rpc/error_details_pb.js';
import { NormalBalance, OverdraftMode } from './gen/moneymovement/v1/account_pb.js';
import { AccountService } from './gen/moneymovement/v1/account_service_pb.js';
import type { Balance } from './gen/moneymovement/v1/balance_pb.js';
import { BalanceService } from './gen/moneymovement/v1/balance_service_pb.js';
import { ErrorReason } from './gen/moneymovement/v1/error_reason_pb.js';
import { EventType, type Event } from './gen/moneymovement/v1/event_pb.js';
import { EventService, EventStart } from './gen/moneymovement/v1/event_service_pb.js';
import { MoneyMovementService } from './gen/moneymovement/v1/money_movement_service_pb.js';
import { Transfer_State } from './gen/moneymovement/v1/transfer_pb.js';

const AMOUNT = 9007199254740993n; // 2^53 + 1: Number(AMOUNT) would be ...992.
const HOLD = 2500n;
const CAPTURE = 2000n;
const DEADLINE_MS = 10_000;
const RETRYABLE = new Set([Code.Unavailable, Code.Aborted]);

// Every call carries the tenant's token.
function bearer(token: string): Interceptor {
  return (next) => (request) => {
    request.header.set('authorization', `Bearer ${token}`);
    return next(request);
  };
}

// Unary calls: transient failures are retried with the same request, hence the same
// request_id, which the server answers at most once. The call's deadline covers its
// retries (so DEADLINE_EXCEEDED ends it). Anything else is thrown at once.
function retrying(): Interceptor {
  return (next) => async (request) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(request);
      } catch (error) {
        const code = ConnectError.from(error).code;
        const last = attempt >= 4 || request.signal.aborted;
        if (request.stream || last || !RETRYABLE.has(code)) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
      }
    }
  };
}

// What a refused call says: the gRPC code and its google.rpc details.
function describeError(error: unknown) {
  const refused = ConnectError.from(error);
  const [info] = refused.findDetails(ErrorInfoSchema);
  const violations = refused
    .findDetails(BadRequestSchema)
    .flatMap((bad) => bad.fieldViolations.map((v) => ({ field: v.field, reason: v.reason })));
  return {
    code: Code[refused.code], // e.g. "FailedPrecondition"
    code_number: refused.code, // the gRPC status code, e.g. 9
    message: refused.rawMessage,
    reason: info?.reason ?? '',
    domain: info?.domain ?? '',
    metadata: info?.metadata ?? {},
    // The reason is one the contract lists (moneymovement.v1.ErrorReason).
    reason_listed: info !== undefined && info.reason in ErrorReason,
    field_violations: violations,
  };
}

async function refusal(call: Promise<unknown>) {
  try {
    await call;
  } catch (error) {
    return describeError(error);
  }
  throw new Error('a call that must be refused succeeded');
}

function balanceJson(balance: Balance | undefined) {
  if (!balance) throw new Error('a balance is missing');
  return {
    account_id: balance.accountId,
    posted_minor: balance.postedMinor.toString(),
    available_minor: balance.availableMinor.toString(),
    pending_outbound_minor: balance.pendingOutboundMinor.toString(),
    version: balance.version.toString(),
  };
}

function eventJson(event: Event) {
  const subject = event.account?.id ?? event.transfer?.id ?? '';
  return {
    cursor: event.cursor,
    type: `EVENT_TYPE_${EventType[event.type]}`,
    id: subject,
    request_id: event.requestId,
    amount_minor: event.transfer?.amountMinor.toString(),
    posted_amount_minor: event.transfer?.postedAmountMinor.toString(),
  };
}

function must<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`the response has no ${what}`);
  return value;
}

async function main() {
  const address = process.env.MM_ADDRESS || '127.0.0.1:50051';
  const token = process.env.MM_TOKEN;
  if (!token) throw new Error('set MM_TOKEN to a tenant token (make run prints one)');

  const transport = createGrpcTransport({
    baseUrl: `http://${address}`,
    interceptors: [bearer(token), retrying()],
    defaultTimeoutMs: DEADLINE_MS,
  });
  const accounts = createClient(AccountService, transport);
  const balances = createClient(BalanceService, transport);
  const movements = createClient(MoneyMovementService, transport);
  const events = createClient(EventService, transport);
  const requestId = () => randomUUID();

  // Where the stream is before our changes: their events all come after this cursor.
  const { nextCursor: before } = await events.listEvents({
    start: EventStart.NOW,
    pageSize: 1,
  });

  const open = async (name: string, normal: NormalBalance, overdraft: OverdraftMode) =>
    must(
      (
        await accounts.createAccount({
          requestId: requestId(),
          name,
          currencyCode: 'USD',
          normalBalance: normal,
          overdraftMode: overdraft,
        })
      ).account,
      'account',
    );
  const funding = await open('TS funding', NormalBalance.DEBIT, OverdraftMode.UNLIMITED);
  const wallet = await open('TS wallet', NormalBalance.CREDIT, OverdraftMode.NONE);
  const merchant = await open('TS merchant', NormalBalance.CREDIT, OverdraftMode.NONE);
  const read = must((await accounts.getAccount({ accountId: wallet.id })).account, 'account');
  if (read.name !== 'TS wallet') throw new Error(`GetAccount returned ${read.name}`);

  // int64 is a bigint in protobuf-es: 2^53 + 1 goes out and comes back exactly.
  const transfer = must(
    (
      await movements.createTransfer({
        requestId: requestId(),
        debitAccountId: funding.id,
        creditAccountId: wallet.id,
        amountMinor: AMOUNT,
        currencyCode: 'USD',
        description: 'top-up beyond 2^53',
      })
    ).transfer,
    'transfer',
  );
  if (transfer.amountMinor !== AMOUNT) {
    throw new Error(`the transfer came back as ${transfer.amountMinor}, not ${AMOUNT}`);
  }

  // A hold (a PENDING transfer) on the wallet, then a partial capture of it.
  const hold = must(
    (
      await movements.createTransfer({
        requestId: requestId(),
        debitAccountId: wallet.id,
        creditAccountId: merchant.id,
        amountMinor: HOLD,
        currencyCode: 'USD',
        pending: true,
        holdTimeout: durationFromMs(10 * 60_000),
      })
    ).transfer,
    'transfer',
  );
  const captured = must(
    (
      await movements.postTransfer({
        requestId: requestId(),
        transferId: hold.id,
        amountMinor: CAPTURE,
      })
    ).transfer,
    'transfer',
  );
  const fetched = must(
    (await movements.getTransfer({ transferId: transfer.id })).transfer,
    'transfer',
  );

  const { balances: read3 } = await balances.batchGetBalances({
    accountIds: [funding.id, wallet.id, merchant.id],
  });
  const byId = new Map(read3.map((balance) => [balance.accountId, balance]));
  const walletBalance = must(
    (await balances.getBalance({ accountId: wallet.id })).balance,
    'balance',
  );

  // Refusals: the merchant cannot pay out more than it has, and an unknown account.
  const insufficient = await refusal(
    movements.createTransfer({
      requestId: requestId(),
      debitAccountId: merchant.id,
      creditAccountId: wallet.id,
      amountMinor: AMOUNT,
      currencyCode: 'USD',
    }),
  );
  const notFound = await refusal(
    accounts.getAccount({ accountId: `acct_${'a'.repeat(26)}` }),
  );
  const invalid = await refusal(
    movements.createTransfer({ requestId: requestId(), amountMinor: -5n }),
  );

  // Our changes, read back from the live stream: three accounts, the top-up, the hold and
  // its capture. The stream does not end by itself: stop it once they are all in.
  const expected = 6;
  const seen: Event[] = [];
  let cursor = before;
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), DEADLINE_MS);
  try {
    for await (const response of events.watchEvents(
      { afterCursor: before },
      { signal: stop.signal, timeoutMs: 0 }, // a stream has no deadline; the timer ends it
    )) {
      seen.push(...response.events);
      cursor = response.cursor;
      if (seen.length >= expected) break;
    }
  } finally {
    clearTimeout(timer);
    stop.abort();
  }

  process.stdout.write(
    `${JSON.stringify({
      funding_account_id: funding.id,
      wallet_account_id: wallet.id,
      merchant_account_id: merchant.id,
      transfer_id: transfer.id,
      transfer_amount_minor: transfer.amountMinor.toString(),
      transfer_state: Transfer_State[fetched.state],
      fetched_amount_minor: fetched.amountMinor.toString(),
      hold_id: hold.id,
      hold_state: Transfer_State[hold.state],
      captured_state: Transfer_State[captured.state],
      captured_minor: captured.postedAmountMinor.toString(),
      balances: {
        funding: balanceJson(byId.get(funding.id)),
        wallet: balanceJson(byId.get(wallet.id)),
        merchant: balanceJson(byId.get(merchant.id)),
      },
      wallet_balance: balanceJson(walletBalance),
      rejections: { insufficient, not_found: notFound, invalid },
      events: seen.map(eventJson),
      events_cursor: cursor,
    })}\n`,
  );
}

main().catch((error: unknown) => {
  const problem = error instanceof ConnectError ? JSON.stringify(describeError(error)) : error;
  console.error('example.ts failed:', problem);
  process.exit(1);
});

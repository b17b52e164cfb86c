#!/usr/bin/env node
// `npm run generate`: TypeScript from the protos into src/gen/ (not in git), with
// protoc-gen-es (protobuf-es v2) from node_modules and the protoc of the project's Python
// environment (grpcio-tools bundles it, with google/protobuf/*.proto).
//
// Generated: moneymovement/v1/*.proto (messages and the four service descriptors that
// Connect's clients take) and google/rpc/error_details.proto (ErrorInfo, BadRequest,
// RetryInfo: the error details the server puts in grpc-status-details-bin).
// google/rpc/*.proto come from MM_PROTO_PATH (directories separated by ':') or from the
// googleapis-common-protos package of that Python environment, as for clients/node.
//
// The Python is MM_PYTHON, else ../../.venv/bin/python (any `make` target creates it).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const out = path.join(here, 'src', 'gen');
const plugin = path.join(here, 'node_modules', '.bin', 'protoc-gen-es');
const python = process.env.MM_PYTHON || path.join(root, '.venv', 'bin', 'python');
const RPC_PROTO = 'google/rpc/error_details.proto';

function fail(message) {
  console.error(`generate.mjs: ${message}`);
  process.exit(1);
}

if (!fs.existsSync(plugin)) fail(`${plugin} is missing: run npm ci first`);
if (!fs.existsSync(python)) {
  fail(`no Python at ${python}: run any make target at the repository root, or set MM_PYTHON`);
}

// Where google/rpc/error_details.proto is: MM_PROTO_PATH first, then the Python packages.
function rpcProtoDir() {
  const listed = (process.env.MM_PROTO_PATH || '').split(path.delimiter).filter(Boolean);
  const found = listed.find((dir) => fs.existsSync(path.join(dir, RPC_PROTO)));
  if (found) return found;
  const script =
    'import os, google.rpc; print(os.path.dirname(os.path.dirname(google.rpc.__path__[0])))';
  const located = execFileSync(python, ['-c', script], { encoding: 'utf8' }).trim();
  if (!fs.existsSync(path.join(located, RPC_PROTO))) {
    fail(`${RPC_PROTO} not found in ${located}; set MM_PROTO_PATH to a directory holding it`);
  }
  return located;
}

const protos = path.join(root, 'protos');
const ours = fs
  .readdirSync(path.join(protos, 'moneymovement', 'v1'))
  .filter((name) => name.endsWith('.proto'))
  .sort()
  .map((name) => `moneymovement/v1/${name}`);

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
execFileSync(
  python,
  [
    '-m', 'grpc_tools.protoc',
    `-I${protos}`,
    `-I${rpcProtoDir()}`,
    `--plugin=protoc-gen-es=${plugin}`,
    `--es_out=${out}`,
    // .ts files importing each other as './x_pb.js', as Node's ES module resolution wants.
    '--es_opt=target=ts,import_extension=js',
    ...ours,
    RPC_PROTO,
  ],
  { stdio: 'inherit' },
);
console.log(`generated ${ours.length + 1} files into ${path.relative(here, out)}/`);

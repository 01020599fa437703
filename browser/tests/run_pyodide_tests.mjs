// Runs the core unit tests (tests/core) inside Pyodide under Node, against the built wheel.
//
//   node browser/tests/run_pyodide_tests.mjs [--dist DIR] [--wheels DIR] [--tests DIR]
//
// Defaults: dist/ (exactly one webraft-*.whl, built by .ci/pyodide-tests), browser/.wheels/
// (pytest and its pure-Python dependencies, downloaded from PyPI by .ci/pyodide-tests) and
// tests/core. Offline: Pyodide comes from browser/node_modules/pyodide (npm ci).
//
// The test files are copied into Pyodide's in-memory file system under /wrtests/tests/core; the
// repository root is never on sys.path, so `import webraft` can only find the installed wheel
// (checked below before pytest starts). Exit code: pytest's (0 only when tests ran and passed;
// 5 "no tests collected" fails too), 2 for a setup error.

import fs from "node:fs";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BROWSER = path.resolve(HERE, "..");
const REPO = path.resolve(BROWSER, "..");

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? path.resolve(process.argv[i + 1]) : fallback;
}

const DIST = option("--dist", path.join(REPO, "dist"));
const WHEELS = option("--wheels", path.join(BROWSER, ".wheels"));
const TESTS = option("--tests", path.join(REPO, "tests", "core"));
const MOUNT = "/wrtests/tests/core";

function fail(message) {
  console.error(`run_pyodide_tests: ${message}`);
  process.exit(2);
}

// An error escaping Pyodide's event loop would make Node print its whole minified source line.
process.on("uncaughtException", (err) => fail(`uncaught: ${err?.message ?? err}`));
process.on("unhandledRejection", (err) => fail(`unhandled rejection: ${err?.message ?? err}`));

// Node Buffers are Uint8Arrays that Pyodide's converters do not recognise: pass plain views.
function readBytes(file) {
  const buf = fs.readFileSync(file);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

function wheelsIn(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => f.endsWith(".whl")).sort();
}

// Copies a host directory into Pyodide's file system (skipping caches), returns the file count.
function copyTree(FS, src, dst) {
  FS.mkdirTree(dst);
  let count = 0;
  for (const entry of fs.readdirSync(src, { withFileTypes: true })) {
    if (entry.name === "__pycache__" || entry.name.startsWith(".")) continue;
    const from = path.join(src, entry.name);
    const to = `${dst}/${entry.name}`;
    if (entry.isDirectory()) count += copyTree(FS, from, to);
    else if (entry.isFile()) {
      FS.writeFile(to, readBytes(from));
      count += 1;
    }
  }
  return count;
}

const ours = wheelsIn(DIST).filter((f) => /^webraft-.*-py3-none-any\.whl$/.test(f));
if (ours.length !== 1) {
  fail(`expected exactly one webraft-*-py3-none-any.whl in ${DIST}, found ${ours.length}` +
       ` (${ours.join(", ") || "none"}); build it with .ci/pyodide-tests`);
}
const ourWheel = path.join(DIST, ours[0]);
const testWheels = wheelsIn(WHEELS);
if (!testWheels.some((f) => f.startsWith("pytest-"))) {
  fail(`no pytest wheel in ${WHEELS}; .ci/pyodide-tests downloads them`);
}
if (!fs.existsSync(path.join(TESTS, "__init__.py"))) fail(`${TESTS} is not a test package`);

let loadPyodide;
try {
  ({ loadPyodide } = await import("pyodide"));
} catch (err) {
  fail(`cannot import pyodide from ${BROWSER}/node_modules (run npm ci there): ${err.message}`);
}

const started = performance.now();
const pyodide = await loadPyodide();
// Raw writes, so pytest's progress dots stay on one line.
const raw = (stream) => ({ write: (bytes) => { stream.write(bytes); return bytes.length; } });
pyodide.setStdout(raw(process.stdout));
pyodide.setStderr(raw(process.stderr));
const booted = performance.now();

// loadPackage resolves even when a package fails: collect errors and fail loudly.
const errors = [];
await pyodide.loadPackage(ourWheel, {
  messageCallback: () => {},
  errorCallback: (msg) => errors.push(msg),
});
if (errors.length) fail(`loading ${ourWheel} failed:\n  ${errors.join("\n  ")}`);

for (const name of testWheels) {
  try {
    pyodide.unpackArchive(readBytes(path.join(WHEELS, name)), "wheel");
  } catch (err) {
    fail(`unpacking ${name} failed: ${err.message}`);
  }
}

const copied = copyTree(pyodide.FS, TESTS, MOUNT);

let code;
try {
  code = await pyodide.runPythonAsync(`
import importlib.metadata, os, platform, sys
print("Python", platform.python_version(), "on", sys.platform, "| Pyodide", ${JSON.stringify(pyodide.version)})
import webraft
dist = importlib.metadata.distribution("webraft")
installed = os.path.realpath(dist.locate_file("webraft/__init__.py"))
print("webraft", dist.version, "from", os.path.dirname(webraft.__file__))
if os.path.realpath(webraft.__file__) != installed:
    raise RuntimeError(f"webraft imported from {webraft.__file__}, not from the wheel ({installed})")
import pytest
print("pytest", pytest.__version__)
sys.dont_write_bytecode = True
os.chdir("/wrtests")
int(pytest.main(["-q", "-ra", "-p", "no:cacheprovider", ${JSON.stringify(MOUNT)}]))
`);
} catch (err) {
  fail(`Python raised: ${err.message}`);
}
const done = performance.now();

console.log(`run_pyodide_tests: ${copied} test files, ${ours[0]} + ${testWheels.length} wheels;` +
            ` boot ${((booted - started) / 1000).toFixed(1)} s,` +
            ` tests ${((done - booted) / 1000).toFixed(1)} s; pytest exit code ${code}`);
process.exit(code);

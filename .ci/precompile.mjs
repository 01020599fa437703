// Compiles the webraft wheel's modules to bytecode for the pinned Pyodide's Python, so that a
// tab imports them without compiling (about two thirds of the import's time):
//
//   node .ci/precompile.mjs dist/webraft-X-py3-none-any.whl dist/webraft-X-pyodide-bytecode.zip
//
// The zip holds webraft/**/__pycache__/*.pyc, relative to site-packages, as unchecked-hash
// pycs (never compared with the sources: they are built from the same wheel, and the manifest
// names the two together). A Python of another version ignores them (the magic number
// differs) and compiles the sources. Run by .ci/build-browser; offline.
import fs from "node:fs";
import process from "node:process";
import { loadPyodide } from "../browser/node_modules/pyodide/pyodide.mjs";

const [wheel, out] = process.argv.slice(2);
if (!wheel || !out) {
  console.error("usage: node .ci/precompile.mjs WHEEL OUT.zip");
  process.exit(2);
}
const pyodide = await loadPyodide();
const bytes = fs.readFileSync(wheel);
// Where tabs unpack it too: the code objects' file names are those of tracebacks.
const sitePackages = pyodide.runPython("__import__('site').getsitepackages()[0]");
pyodide.unpackArchive(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), "wheel",
  { extractDir: sitePackages });
pyodide.runPython(`
import compileall, pathlib, py_compile, zipfile
site = pathlib.Path(${JSON.stringify(sitePackages)})
if not compileall.compile_dir(site / "webraft", quiet=1, workers=1,
                              invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH):
    raise SystemExit("precompile: a module does not compile")
with zipfile.ZipFile("/bytecode.zip", "w", zipfile.ZIP_DEFLATED) as z:
    for pyc in sorted((site / "webraft").rglob("__pycache__/*.pyc")):
        z.write(pyc, pyc.relative_to(site).as_posix())
`);
fs.writeFileSync(out, pyodide.FS.readFile("/bytecode.zip"));

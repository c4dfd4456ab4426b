"""Convert a BVLC AlexNet release end to end: convert, check parity, write the manifest entry.

    python tools/convert_bvlc.py bvlc_alexnet.caffemodel
    python tools/convert_bvlc.py bvlc_reference_caffenet.caffemodel --prototxt deploy.prototxt
    python tools/convert_bvlc.py bvlc_alexnet.npy --images ../shared/data/imagenet-sample

1. Converts SRC (`.npy` or `.caffemodel`) with `alexnet_keras.converters`.
2. Runs the converted Keras model and the independent float64 numpy Caffe
   forward pass on real images (default `../shared/data/imagenet-sample`)
   and fails (exit 1) unless the fc8 logits agree to 1e-4 relative.
3. Prints the manifest entry for the file (its size, sha1 and sha256, the
   variant, the parity result). With `--write` it fills the release's file
   entry in `weights/manifest.json` and writes the same bytes to the package
   copy, `alexnet_keras/resources/manifest.json` (the one `registry` reads; the
   tests require the two to be identical); a file whose published sha1
   disagrees is refused, since it is not that release.

Exit codes: 0 converted and verified; 1 parity failed; 2 bad input.
"""

import argparse
import json
import pathlib
import shutil
import sys

# The repository this script sits in (tools/..): the source manifest, then the package copy.
ROOT = pathlib.Path(__file__).resolve().parents[1]
MANIFESTS = [
    ROOT / "weights" / "manifest.json",
    ROOT / "alexnet_keras" / "resources" / "manifest.json",
]


def file_entry(report, url):
    return {
        "format": report.format,
        "filename": pathlib.Path(report.source).name,
        "url": url,
        "size": report.digests["size"],
        "sha1": report.digests["sha1"],
        "sha256": report.digests["sha256"],
    }


def update_manifest(release, entry, parity):
    doc = json.loads(MANIFESTS[0].read_text())
    files = doc["releases"][release]["files"]
    current = next((f for f in files if f["format"] == entry["format"]), None)
    if current is None:
        raise ValueError(f"{MANIFESTS[0]}: {release} lists no {entry['format']} file")
    for key in ("sha1", "sha256", "size"):
        if current.get(key) not in (None, entry[key]):
            raise ValueError(
                f"{entry['filename']}: {key} {entry[key]} is not the published "
                f"{current[key]} of {release}"
            )
        current[key] = entry[key]
    current.setdefault("sources", {})["checked"] = parity
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    MANIFESTS[0].write_text(text)
    shutil.copyfile(MANIFESTS[0], MANIFESTS[1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", type=pathlib.Path)
    parser.add_argument("-o", "--output", type=pathlib.Path, default=None)
    parser.add_argument("--release", default=None, help="the manifest name (default: by hash)")
    parser.add_argument("--variant", choices=["bvlc", "caffenet"], default=None)
    parser.add_argument("--prototxt", type=pathlib.Path, default=None)
    parser.add_argument(
        "--images", type=pathlib.Path, default=ROOT.parent / "shared" / "data" / "imagenet-sample"
    )
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--write", action="store_true", help="update weights/manifest.json")
    args = parser.parse_args(argv)

    from alexnet_keras import registry
    from alexnet_keras.caffe.convert import convert_file
    from alexnet_keras.converters.verify import verify

    try:
        report = convert_file(args.src, args.output, variant=args.variant, prototxt=args.prototxt)
        print(report)
        result = verify(report.output, report.net, args.images, args.count)
        print(result)
        release = args.release or report.release
        known = registry.get_release(release) if release else None
        url = None
        if known:
            url = next((f["url"] for f in known["files"] if f["format"] == report.format), None)
        parity = (
            f"alexnet-keras tools/convert_bvlc.py: {len(result.images)} images of "
            f"{args.images.name}, max relative fc8 logit error {result.max_rel:.2e} vs the "
            "float64 numpy Caffe reference"
        )
        entry = file_entry(report, url)
        summary = {"variant": report.variant, "classes": report.classes, "files": [entry]}
        print(json.dumps({release or "<name>": {**summary, "parity": parity}}, indent=2))
        if not result.passed:
            print(f"Error: parity check failed for {report.output}", file=sys.stderr)
            return 1
        if args.write:
            if not release:
                raise ValueError(f"{args.src}: not a known release; pass --release NAME")
            update_manifest(release, entry, parity)
            print(f"updated {MANIFESTS[0]} and {MANIFESTS[1]}")
    except ValueError as e:
        print("Error: " + " ".join(str(e).split()), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``safin verify-release --method M``: proof that our import of the authors' release gives the authors' own outputs.

Two of the reference repositories commit images their released models produced: GlebSBrykin/SANET ``output/``
(``input/`` × ``style/``, by ``Eval.py``) and PytorchWCT ``samples/`` (``images/content`` × ``images/style``, by
``WCT.py``). The command fetches those inputs and outputs from the repository at a pinned commit (each file's
sha256 pinned, into ``$SAFIN_CACHE/release_evidence/METHOD/``), runs our import of the release
(:func:`pipeline.pretrained.load_release`) in float32 on the inputs with the test settings of the code that wrote
the outputs, writes our images the way theirs were written (``torchvision.utils.save_image``: a 2 px black border
around one image, 8 bits, JPEG at PIL's default quality 75) and compares, per image: PSNR and the largest
difference against their JPEG, raw and after our image went through the same JPEG encoder.

The pass line (:data:`PASS_PSNR_DB`, 40 dB: an RMS difference of 2.5 levels of 255) is on the re-encoded
comparison: JPEG's loss is then applied to both sides, so a right load differs from theirs only by float32
arithmetic on another device and another libjpeg. Measured on the stand-in (``tests/test_verify_release.py``,
synthetic release files, "their" outputs from the restated reference in float64): our float32 import within
1.4e-5 of it (WCT; below one 8-bit level), the re-encoded JPEGs identical (PSNR infinite) for SANet and WCT;
two same-shaped layers swapped: 12.9 dB (SANet's decoder) and 32 dB (WCT's level-4 decoder). What the real
release gives is what the command prints: not measured here (these machines cannot reach the hosts). pytorch-AdaIN's ``results.png`` and SAFIN's
``results.jpg`` are grids of differently sized cells with labels, as is AdaAttN's ``picture/picture.png``; StyTR-2
commits only the paper's figures: no cell can be cut out reliably, so those methods have no check here
(:data:`NO_EVIDENCE` says so).
"""
from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: a right load passes at or above this PSNR against the authors' JPEG, after our image went through the same
#: JPEG encoding (see the module docstring)
PASS_PSNR_DB = 40.0
RAW = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"


@dataclass(frozen=True)
class Case:
    content: str
    style: str
    output: str


@dataclass(frozen=True)
class Evidence:
    method: str
    repo: str
    commit: str
    written_by: str              # the code that wrote the outputs, and its test settings
    files: dict                  # repository path -> sha256
    cases: tuple
    resize: str = "none"         # "none": ToTensor only (SANET Eval.py); "pytorchwct-2017": Loader.py of 1c04769
    settings: tuple = ()         # (attribute, value) of our model set for the check: the writing code's arithmetic
    border: int = 2              # save_image's padding around a single image (torchvision of the time)
    rounding: str = "round"      # save_image's 8 bits: "round" (torchvision >= 0.3) or "truncate" (0.2)


_SANET_STYLES = ("1", "Composition-VII", "Starry", "candy", "la_muse", "rain_princess", "seated_nude", "style11",
                 "udnie", "wave", "wreck")

EVIDENCE: dict[str, Evidence] = {
    "sanet": Evidence(
        "sanet", "GlebSBrykin/SANET", "2dfec142cf9bb4c7915a28284097fd4ea9dca251",
        "Eval.py at 2dfec14 (2019-12-09): ToTensor() only, one step, save_image to .jpg",
        {
            "input/Content.jpg": "f7920b5f04942953c0a20b421e06f6fc2a24d80e2dfaffe608c85d92dc8766f1",
            "input/chicago.jpg": "7734763945fe7e7d463ea86ed84a9f21b4c806ff5c9c6e68502cb484584e92e4",
            "output/Content_stylized_1.jpg": "0d35fd22918da9c9820c4d7e0e6397f684a3ebc474ca696db5ce9147a15a9d93",
            "output/Content_stylized_Composition-VII.jpg": "6b856851218af079c659f9a3ce7fe5b726cd89c705db84630050a64f4e029732",
            "output/Content_stylized_Starry.jpg": "1b53feee4407ee68cd97a3a3ab7926e529cf1984d3a5d987ef195b0b52991dac",
            "output/Content_stylized_candy.jpg": "15995967425c0e9f5e3ddb33635a02a3c1a096648b2558159410cfd50997390a",
            "output/Content_stylized_la_muse.jpg": "88e4877760ae55dd5806250c04973ff55ecfdc36e176993f83cca2c90131081f",
            "output/Content_stylized_rain_princess.jpg": "c49c13f3d5f3e283c75644c45b07d21bfbed7e4aed56c53ce3f5063b323269c7",
            "output/Content_stylized_seated_nude.jpg": "86f7cd351b787c28be0e50038accc77f290c9335250d98037222ec6fdaee57a2",
            "output/Content_stylized_style11.jpg": "daca3d79772af22dfae5ade222ab7be45e7efdc560a806c6dc91977fcc28f99c",
            "output/Content_stylized_udnie.jpg": "5a972af94125a3108a59e0cd31d5870fdbdfaa2b97b00ae980b388800a64cb76",
            "output/Content_stylized_wave.jpg": "b72629c9f873d5833de6f80a7426cff69738bf99989eea103f75a20ba930d3d0",
            "output/Content_stylized_wreck.jpg": "a65b42dae1764eb73031839ab4223020d388a6f20d1a03de905f2c729b4634a8",
            "output/chicago_stylized_1.jpg": "c1a860d49dc4cf19464f493b500973a4a1af261cb8e0adcf39be90cc5928b04d",
            "output/chicago_stylized_Composition-VII.jpg": "6d1d5b51edb3a00e5092c6c4b80bc3e2dc23f58ff3ceff3a0a230158909abdcd",
            "output/chicago_stylized_Starry.jpg": "676ad150206d855e305e712def548d7f68a0b1a1d70b31d46572c8ee71f6a94c",
            "output/chicago_stylized_candy.jpg": "a2833e1ace63f3bbc959f243149e1c2b6f76cc97186870b4241dd26eeb796498",
            "output/chicago_stylized_la_muse.jpg": "e2a99fa3ac92ea2f43878d8ffecff3eb56ea8ac3450936608bff73a14ca0d77b",
            "output/chicago_stylized_rain_princess.jpg": "70d7d04cc3a5e3add6883a022535b814824b0850e3b652cac6fbaa6283c791c7",
            "output/chicago_stylized_seated_nude.jpg": "77b3460de2fe493a3574d9bf1ba107628950427b7473c2740befe44fec3dcdb8",
            "output/chicago_stylized_style11.jpg": "54404abb628aff0c906154dd070ed8d20ca5542da16592369837f00490bf6d96",
            "output/chicago_stylized_udnie.jpg": "8296408cb0a26100cd95a14e148ddef0fdbbb91b8171b2e44312330131e780aa",
            "output/chicago_stylized_wave.jpg": "0c30bc4dedbc1e1d8368c6cc3b26f38a73a8d7e50ad5703484c0db43885970b7",
            "output/chicago_stylized_wreck.jpg": "3df00847741e45508022db110aef9db71091951660632b7fcfa726326fc434a9",
            "style/1.jpg": "3669d17642c67d8cee2d32528b699bb50f44589ccda62a6c80ac25e2a41ac97b",
            "style/Composition-VII.jpg": "449c56e3e1e90cb2c008d326ab22da36b38e27dd0c01a5511f5c404a4d40e2f8",
            "style/Starry.jpg": "ad9a57f44397d16b00cdc41a6d0428cd7681e0b472516406b64c8e76b2dec058",
            "style/candy.jpg": "808ea217dd455276852771b42dcdb1c8b25b789fe841726ed875489ef7493322",
            "style/la_muse.jpg": "fba41c0a11e878b8f7e6a9518a2871b58512f08212e3efa0d7026ad01176818b",
            "style/rain_princess.jpg": "5e7652f81bc4b71540ed17e01808c6c462272d067c9536a307a3984d2df035d7",
            "style/seated_nude.jpg": "92de539d51a15db497dd46202d4c28c1fddb79ba13ee5206126a208fbed53240",
            "style/style11.jpg": "541f219faf2cecffd059755a5c34a173276e8b4df07183872dcee8101a67df59",
            "style/udnie.jpg": "45e510d2a53b4167a22bae12a191eea3018f82d74a2fa17b1573adc1e9dfc7f6",
            "style/wave.jpg": "d5b09c7581e576afe932f275b9d17320d4cc1223ad001f36416b3809481dffd2",
            "style/wreck.jpg": "a48960bfca82dc2c6c1fbbfd05182c440eb13d3e6b8e09f0e09f107af8fc49f7",
        },
        tuple(Case(f"input/{c}.jpg", f"style/{s}.jpg", f"output/{c}_stylized_{s}.jpg")
              for c in ("chicago", "Content") for s in _SANET_STYLES)),
    # samples/ was last written at 1c04769 (2017-12-14), by a WCT.py whose level 4 encodes the *content*
    # (cF4 = wct.e4(contentImg)): level 5's image is discarded and the cascade that shows is 4, 3, 2, 1 (fixed in
    # 4a3d674, 2018-07-24, "Use all five vgg"). Its Loader resized with PIL's default filter of the time (NEAREST
    # until Pillow 7.0), and torchvision 0.2's save_image truncated to 8 bits.
    "wct": Evidence(
        "wct", "sunshineatnoon/PytorchWCT", "ee9d813020155cbb5c6e3937290cff3650f6ce8e",
        "WCT.py/Loader.py at 1c04769 (2017-12-14), which wrote samples/: fineSize 512, levels 4..1 from the content, "
        "alpha 1",
        {
            "images/content/in1.jpg": "b7fc2ef4603593ba40531385aaf517290b8fa8ee81ec15909074ceac5cb808b7",
            "images/content/in2.jpg": "8ad25147a8c228be215a82a71aec493d4f4998145565ca827944e1e6fb0d28b3",
            "images/content/in3.jpg": "b7fc2ef4603593ba40531385aaf517290b8fa8ee81ec15909074ceac5cb808b7",
            "images/content/in4.jpg": "1f8e27d6252377f55107e02dfcf8dc55437724f535ce479358e6887017abf2cd",
            "images/style/in1.jpg": "d77c13fb502a29feff5590cb61c4554318d5f2332ecae1719cccc913b57f4d4e",
            "images/style/in2.jpg": "af5d9fe729076a73a701d3e3118f20571c0fb860e12bc85406452b5e11a1b81e",
            "images/style/in3.jpg": "efe9c5fcf5d652ba574fd1079eda9ec26aa823fd630750469963435b552aae82",
            "images/style/in4.jpg": "6a8b2383d9c110354a97a42c74bdcc5341be879cbb842ddb7ab5843dbdf56d53",
            "samples/in1.jpg": "2357482110d64983e6c7916bfb0dda52c2d8df653664bcf128fb60cb16110dae",
            "samples/in2.jpg": "8081cc817e7a9ee98c805d0547ab6985344c2262ac87b02267e5a205311f801d",
            "samples/in3.jpg": "11d136e72d09a10b1ca601366dda347b745442d4c779074fa077cb56fe6df545",
            "samples/in4.jpg": "2f98bbb05d3f69beb0cfcb050903509d20aba140323ecf1c8aa53c699cf62a15",
        },
        tuple(Case(f"images/content/in{i}.jpg", f"images/style/in{i}.jpg", f"samples/in{i}.jpg") for i in range(1, 5)),
        resize="pytorchwct-2017", rounding="truncate",
        # the cascade that wrote samples/, and PytorchWCT's own whitening (float64 torch.svd on the CPU), not our
        # float32 eigh fast path: their arithmetic, so that only the device and the encoders' float32 differ
        settings=(("levels", (4, 3, 2, 1)), ("naive", True))),
}

NO_EVIDENCE = {
    "adain": "pytorch-AdaIN commits its released model's outputs only as results.png, a grid of labelled cells of "
             "different sizes: no cell can be cut out reliably",
    "safin": "SAFIN commits its outputs only as results.jpg, a grid with labels: no cell can be cut out reliably",
    "adaattn": "AdaAttN commits its outputs only as picture/picture.png, a 627 x 811 grid of about 80 px cells under "
               "labels (its test inputs are in datasets/): no cell can be cut out reliably",
    "stytr2": "StyTR-2 commits the paper's figures (Figure/), not the outputs of its released model on named inputs",
}


class VerifyError(ValueError):
    """The check cannot run (no committed outputs for the method, or its files are not at hand): one line."""


def evidence_folder(method: str, root: Path | None = None) -> Path:
    from safin.io.weights import cache_dir

    return (root or cache_dir()) / "release_evidence" / method


def fetch_evidence(ev: Evidence, root: Path | None = None) -> dict[str, Path]:
    """Every file of ``ev`` from the repository at its pinned commit, sha256 checked (cached)."""
    from safin.io.download import DownloadError, download
    from safin.io.files import sha256_file

    folder = evidence_folder(ev.method, root)
    out, missing = {}, []
    for path, sha in ev.files.items():
        dest = folder / path
        if dest.exists() and sha256_file(dest) == sha:
            out[path] = dest
        else:
            missing.append(path)
    if missing and os.environ.get("SAFIN_OFFLINE") == "1":
        raise VerifyError(f"verify-release {ev.method}: needs {len(missing)} file(s) of {ev.repo} at {ev.commit[:7]} "
                          f"(e.g. {missing[0]}) from raw.githubusercontent.com and SAFIN_OFFLINE=1: go online, or put "
                          f"them under {folder}/ with the repository's paths")
    for path in missing:
        dest = folder / path
        dest.unlink(missing_ok=True)
        try:
            out[path] = download(RAW.format(repo=ev.repo, commit=ev.commit, path=path), dest, sha256=ev.files[path],
                                 progress=False)
        except (DownloadError, ValueError) as e:
            raise VerifyError(f"verify-release {ev.method}: {path} of {ev.repo}: {e}") from e
    return out


def _open(path: Path):
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")


def inputs(ev: Evidence, content: Path, style: Path):
    """(content, style) as (1, 3, H, W) float tensors, prepared as the code that wrote the outputs did."""
    from PIL import Image

    from safin.io.images import pil_to_tensor

    c, s = _open(content), _open(style)
    if ev.resize == "pytorchwct-2017":  # Loader.py: longer side to 512, the style to the content's new size
        w, h = c.size
        if max(w, h) != 512:
            size = (512, h * 512 // w) if w > h else (w * 512 // h, 512)
            c, s = c.resize(size, Image.Resampling.NEAREST), s.resize(size, Image.Resampling.NEAREST)
    elif ev.resize != "none":
        raise ValueError(f"unknown resize {ev.resize!r}")
    return pil_to_tensor(c)[None], pil_to_tensor(s)[None]


def as_written(img, ev: Evidence) -> np.ndarray:
    """Our float image as save_image of the time turned it into 8 bits (H, W, 3)."""
    x = img.detach().double().clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy() * 255
    return (np.floor(x) if ev.rounding == "truncate" else np.floor(x + 0.5)).astype(np.uint8)


def jpeg(arr: np.ndarray, border: int) -> np.ndarray:
    """``arr`` through PIL's JPEG encoder at its defaults (quality 75) inside save_image's black border, as
    save_image('….jpg') wrote it (the border shifts JPEG's 8x8 blocks), border cut off again."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.pad(arr, ((border, border), (border, border), (0, 0)))).save(buf, "JPEG")
    out = np.asarray(_open(io.BytesIO(buf.getvalue())))
    return out[border:out.shape[0] - border, border:out.shape[1] - border]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def compare(ours: np.ndarray, theirs_path: Path, ev: Evidence) -> dict:
    """PSNR (dB) and the largest difference (0..255) of our 8-bit image against theirs (border cut off), raw and
    re-encoded; over the region both cover when the sizes differ (``same_size`` False)."""
    theirs = np.asarray(_open(theirs_path))
    b = ev.border
    theirs = theirs[b:theirs.shape[0] - b, b:theirs.shape[1] - b]
    h, w = min(ours.shape[0], theirs.shape[0]), min(ours.shape[1], theirs.shape[1])
    enc = jpeg(ours, b)[:h, :w]
    o, t = ours[:h, :w], theirs[:h, :w]
    return {"psnr_db": round(psnr(o, t), 2), "psnr_jpeg_db": round(psnr(enc, t), 2),
            "max_abs_255": int(np.abs(o.astype(int) - t.astype(int)).max()),
            "max_abs_jpeg_255": int(np.abs(enc.astype(int) - t.astype(int)).max()),
            "ours_hw": list(ours.shape[:2]), "theirs_hw": list(theirs.shape[:2]),
            "same_size": ours.shape[:2] == theirs.shape[:2]}


def evidence_for(method: str) -> Evidence:
    """The committed outputs of ``method``'s release, or :class:`VerifyError` saying why there are none."""
    if method not in EVIDENCE:
        raise VerifyError(f"verify-release {method}: " + NO_EVIDENCE.get(
            method, f"no committed outputs of the authors' release are known (checks exist for {', '.join(EVIDENCE)})"))
    return EVIDENCE[method]


def verify(method: str, folder: Path | None = None, *, evidence: Evidence | None = None, model=None,
           progress=print) -> dict:
    """Run the check; returns ``{"method", "passed", "threshold_db", "images": [...], ...}``. ``model``: an
    already loaded release (else :func:`pipeline.pretrained.load_release` on ``folder``)."""
    import torch

    ev = evidence or evidence_for(method)
    files = fetch_evidence(ev)
    if model is None:
        from .pretrained import load_release

        model, _ = load_release(method, folder)
    model = model.eval().set_compute("fp32")
    saved = {name: getattr(model, name) for name, _ in ev.settings}
    for name, value in ev.settings:
        setattr(model, name, value)
    images = []
    try:
        for case in ev.cases:
            content, style = inputs(ev, files[case.content], files[case.style])
            device = next(model.parameters()).device
            with torch.inference_mode():
                out = model(content.to(device), style.to(device))
            row = {"content": case.content, "style": case.style, "output": case.output,
                   **compare(as_written(out, ev), files[case.output], ev)}
            # our network pads a side that is not a multiple of its size to one (reflection, then crops back); the
            # authors' ran ceil-mode pooling on the bare size: such an image is shown, not judged
            row["judged"] = all(d % model.size_multiple == 0 for d in content.shape[-2:])
            row["passed"] = row["psnr_jpeg_db"] >= PASS_PSNR_DB if row["judged"] else None
            images.append(row)
            progress(f"{method}: {case.output}: PSNR {row['psnr_db']} dB ({row['psnr_jpeg_db']} dB as their JPEG), "
                     f"largest difference {row['max_abs_255']}/255"
                     + ("" if row["judged"] else f" [not judged: content {tuple(content.shape[-2:])} is padded by our "
                                                 f"network, not by theirs]"))
    finally:
        for name, value in saved.items():
            setattr(model, name, value)
    judged = [r for r in images if r["judged"]]
    passed = all(r["passed"] for r in judged) if judged else None  # None: nothing could be judged, no verdict
    worst = min((r["psnr_jpeg_db"] for r in judged), default=None)
    doc = {"method": method, "repo": ev.repo, "commit": ev.commit, "written_by": ev.written_by,
           "threshold_db": PASS_PSNR_DB, "passed": passed, "judged": len(judged), "worst_psnr_jpeg_db": worst,
           "precision": "float32", "settings": {k: v for k, v in ev.settings}, "images": images,
           "reference_encoder": getattr(model, "reference_encoder", None)}
    verdict = {True: "PASS", False: "FAIL", None: "NOT JUDGED (no image of a size both networks run bare)"}[passed]
    progress(f"{method}: {verdict}: {sum(bool(r['passed']) for r in judged)} of {len(judged)} "
             f"judged images at or above {PASS_PSNR_DB} dB against {ev.repo}@{ev.commit[:7]}'s own outputs "
             f"(worst {worst} dB)")
    return json_safe(doc)


def json_safe(obj):
    """``obj`` with infinite PSNRs (identical images) as the string "inf": JSON (and DVC) have no Infinity."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else str(obj)
    return obj


def write(doc: dict, path: Path) -> Path:
    from safin.io.files import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(doc, indent=2, default=str) + "\n")

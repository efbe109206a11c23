"""What a deployed student costs beside its teacher, measured in one run on the same images.

The demo world (airplanes under clouds in training, none in the held-out split), its CNN teacher
and students trained on the training split and tuned once. On the held-out split: mAP against
ground truth of the teacher, the in-library students (stored concept vectors) and the exported
students applied through ``apply_model`` to the image files; CPU images per second of the teacher
and of the exported path on the same preprocessed images (batches of 32, after a warm-up);
file sizes (both as TorchScript) and parameter counts. The student path is a CLIP image tower
plus linear students: with this world's small CLIP it is larger and slower than the small CNN
teacher, and with a real CLIP it is larger still. What it buys is concepts to read and tune, not
speed. Ends with one line of key=value pairs.
"""

import argparse
import os
import tempfile
import uuid

import fiftyone as fo
import numpy as np
import torch
from timing import timed

from fiftyone_inficond.clip import load_clip
from fiftyone_inficond.demo import build_world, world_teacher
from fiftyone_inficond.deploy.export import export_students
from fiftyone_inficond.deploy.loading import load_export
from fiftyone_inficond.deploy.model import apply_export
from fiftyone_inficond.deploy.path import load_program
from fiftyone_inficond.images import image_batches
from fiftyone_inficond.students.metrics import per_class_ap
from fiftyone_inficond.students.registry import delete_students, list_student_runs, load_students
from fiftyone_inficond.teacher import teacher_scores
from fiftyone_inficond.world.clip_training import WORLD_CHECKPOINT, WORLD_MODEL
from fiftyone_inficond.world.teacher_model import CLASS_NAMES, IMAGE_SIZE, MEAN, STD

BATCH = 32


def images_per_second(model, images, repeats=3):
    """Best of ``repeats`` passes over ``images`` in batches of :data:`BATCH`, after one warm-up batch."""
    with torch.no_grad():
        model(images[:BATCH])

        def one_pass():  # each batch's output dropped at once: collecting them would be timed too
            for i in range(0, len(images), BATCH):
                model(images[i : i + BATCH])

        best, _ = timed(one_pass, repeats)
    return len(images) / best


def teacher_inputs(paths):
    """The teacher's preprocessing (:mod:`fiftyone_inficond.world.teacher_model`) of image files."""
    from PIL import Image

    arrays = [np.asarray(Image.open(p).convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE))) / 255.0 for p in paths]
    return torch.as_tensor((np.stack(arrays) - MEAN) / STD, dtype=torch.float32).permute(0, 3, 1, 2)


def truth_matrix(view, classes):
    labels = view.values("ground_truth.classifications.label")
    return np.array([[c in (row or []) for c in classes] for row in labels])


def measure(n, workdir):
    name = f"inficond-bench-deploy-{uuid.uuid4().hex[:8]}"
    teacher = world_teacher()
    dataset, _ = build_world(name, n=n, images=os.path.join(workdir, "images"), teacher=teacher)
    try:
        run = load_students(dataset, "students")
        run.tune(up={"airplane": ["wing"]}, down={"airplane": ["cloud"]}, epochs=3)  # one expert iteration
        heldout = dataset.match_tags("heldout")
        truth = truth_matrix(heldout, run.classes)
        manifest = export_students(dataset, os.path.join(workdir, "export"))
        applied = apply_export(heldout, os.path.join(workdir, "export"), "exported", positives_only=False)
        assert applied == len(heldout), f"the export predicted {applied} of {len(heldout)} samples"
        ids, library = run.predict(heldout)
        order = {i: k for k, i in enumerate(ids)}
        exported_ids, labels = heldout.values(["id", "exported"])
        exported = np.zeros_like(library)
        for sample_id, label in zip(exported_ids, labels):
            exported[order[sample_id]] = [c.confidence for c in label.classifications]
        teacher_probabilities, classes = teacher_scores(heldout)
        assert heldout.values("id") == list(ids) and classes == CLASS_NAMES == run.classes

        paths = heldout.values("filepath")
        clip = load_clip(WORLD_MODEL, WORLD_CHECKPOINT, device="cpu")
        student_images = torch.cat([batch for _, batch, _ in image_batches(paths, clip.preprocess, BATCH)])
        program = load_export(os.path.join(workdir, "export")).program
        traced_teacher = torch.jit.trace(teacher.eval().requires_grad_(False), teacher_inputs(paths[:2]))
        torch.jit.save(traced_teacher, os.path.join(workdir, "teacher.pt"))
        return dict(
            teacher_map=np.nanmean(per_class_ap(truth, teacher_probabilities)),
            student_map=np.nanmean(per_class_ap(truth, library)),
            export_map=np.nanmean(per_class_ap(truth, exported)),
            export_max_diff=np.abs(exported - library).max(),
            student_img_s=images_per_second(program, student_images),
            teacher_img_s=images_per_second(traced_teacher, teacher_inputs(paths)),
            student_mb=manifest["bytes"] / 1e6,
            student_program_mb=os.path.getsize(os.path.join(workdir, "export", "students.pt")) / 1e6,
            teacher_mb=os.path.getsize(os.path.join(workdir, "teacher.pt")) / 1e6,
            student_params=sum(t.numel() for t in load_program(os.path.join(workdir, "export", "students.pt"))
                               .state_dict().values()),
            teacher_params=sum(p.numel() for p in teacher.parameters()),
            concepts_kept=manifest["concepts_kept"],
            concepts=manifest["concepts"],
            heldout=len(heldout),
        )
    finally:
        for key in list_student_runs(dataset):
            delete_students(dataset, key)
        dataset.delete()
        if fo.dataset_exists(f"{name}-heldout"):
            fo.delete_dataset(f"{name}-heldout")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=300, help="world scenes (2/3 train, 1/3 held out)")
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count()))
    with tempfile.TemporaryDirectory() as workdir:
        m = measure(args.scenes, workdir)
    print(f"held-out split: {m['heldout']} images; {m['concepts_kept']} of {m['concepts']} concepts in the export")
    print(f"mAP vs ground truth: teacher {m['teacher_map']:.3f}, students in the library {m['student_map']:.3f}, "
          f"exported students {m['export_map']:.3f} (largest difference to the library {m['export_max_diff']:.1e})")
    print(f"CPU images/s: teacher {m['teacher_img_s']:.0f}, exported student path {m['student_img_s']:.0f}")
    print(f"size: teacher {m['teacher_mb']:.2f} MB ({m['teacher_params']:,} parameters), exported students "
          f"{m['student_mb']:.2f} MB (program {m['student_program_mb']:.2f} MB, {m['student_params']:,} parameters)")
    print(
        f"teacher_map={m['teacher_map']:.3f} student_map={m['student_map']:.3f} export_map={m['export_map']:.3f} "
        f"student_img_s={m['student_img_s']:.0f} teacher_img_s={m['teacher_img_s']:.0f} "
        f"student_mb={m['student_mb']:.2f} teacher_mb={m['teacher_mb']:.2f} "
        f"student_params={m['student_params']} teacher_params={m['teacher_params']} "
        f"export_equals_library={int(m['export_max_diff'] <= 1e-4)}"
    )


if __name__ == "__main__":
    main()

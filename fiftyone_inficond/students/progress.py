"""Progress bars for training and tuning, as FiftyOne draws its own: one per stage of fitting
(choosing budgets, fitting, retraining), counting epochs, shown as ``fo.config.show_progress_bars``
says, or reported to a ``progress`` callable (an operator's, to the App) as FiftyOne's ``progress``
arguments are. The fitting code itself (:mod:`.training`) knows only that someone may listen."""

import contextlib

import fiftyone.core.utils as fou

from fiftyone_inficond.students.training import reporting


def fitting_progress(progress=None):
    """A context in which every stage of fitting draws (or reports) its bar; ``progress`` as
    FiftyOne's: ``None`` (its config decides), ``True``/``False``, or a callable given the bar."""

    @contextlib.contextmanager
    def start(name, epochs):
        message = f"{name.capitalize()} ({epochs} epochs)"
        with fou.ProgressBar(total=epochs, progress=progress, start_msg=message, iters_str="epochs") as bar:
            yield bar.update

    return reporting(start)

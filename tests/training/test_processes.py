"""What the processes of a job agree on, with their exchanges replaced by given values (the real
ones run under torchrun in test_torchrun.py)."""

import dataclasses

import pytest

from keras_convit.job import Processes, RunDirectoryError


@dataclasses.dataclass(frozen=True)
class _TwoProcesses(Processes):
    """Process 0 of 2, whose partner's values are `theirs`."""

    theirs: tuple = ()

    def gathered(self, values):
        return [list(values), list(self.theirs)]


def test_processes_that_would_start_from_different_steps_are_refused():
    """A machine whose run directory is not the writer's (a local disk) would resume from
    another step; DDP would then wait for ever."""
    committed = {"epoch": 2, "interrupted": {"step": 5}}
    _TwoProcesses(count=2, theirs=(2, 5)).check_same_start("runs/a", committed)
    with pytest.raises(RunDirectoryError, match=r"\[\(2, 5\), \(-1, 0\)\].*every machine sees"):
        _TwoProcesses(count=2, theirs=(-1, 0)).check_same_start("runs/a", committed)


def test_one_process_agrees_with_itself():
    alone = Processes()
    assert alone.agreed_signal(15) == 15 and alone.mean([1.0, 3.0]) == [1.0, 3.0]
    assert alone.mean_logs({"loss": 2.0}) == {"loss": 2.0}

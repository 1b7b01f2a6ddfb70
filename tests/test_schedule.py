"""The learning-rate schedule and the wall-clock budget that shortens it."""
import pytest
import torch

from posefast.schedule import TimeBudget, WarmupCosine, lr_factor


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    factors = [lr_factor(s, 4, 20, 0.1) for s in range(21)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0] and factors[4] == 1.0
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))
    assert factors[20] == pytest.approx(0.1)


def test_warmup_cosine_state_survives_lambdalr_state_dict():
    make = lambda total: torch.optim.lr_scheduler.LambdaLR(  # noqa: E731
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), WarmupCosine(2, total, 0.0))
    a = make(10)
    a.lr_lambdas[0].total_steps = 6  # as a time budget leaves it
    b = make(10)
    b.load_state_dict(a.state_dict())
    assert b.lr_lambdas[0].total_steps == 6 and b.lr_lambdas[0](6) == pytest.approx(0.0)


@pytest.mark.parametrize("now, expected", [
    (10.0, 10),   # 110 s left, 10 s per epoch: all 10 planned fit (3 done + 11 > 10)
    (60.0, 9),    # 60 s left: 6 more
    (115.0, 3),   # 5 s left: none more
    (500.0, 3),   # already over: never fewer than done
])
def test_time_budget_keeps_the_epochs_that_fit(now, expected):
    budget = TimeBudget(2.0, start_s=0.0)
    budget.epochs_that_fit(epochs_done=2, planned=10, last_epoch_s=1.0, now_s=0.0)  # the warm-up epoch
    assert budget.epochs_that_fit(epochs_done=3, planned=10, last_epoch_s=10.0, now_s=now) == expected


def test_time_budget_does_not_shorten_the_plan_from_the_warm_up_epoch():
    # the GPU's coco_best: 60 epochs planned, the first one 6.5 s, the later ones 2.4 s, 270 s
    budget = TimeBudget(4.5, start_s=0.0)
    assert budget.epochs_that_fit(epochs_done=1, planned=60, last_epoch_s=6.5, now_s=6.5) == 60
    assert budget.epochs_that_fit(epochs_done=2, planned=60, last_epoch_s=2.4, now_s=8.9) == 60
    # judged again after epoch 2 from its time: a slow second epoch shortens the plan there
    slow = TimeBudget(4.5, start_s=0.0)
    slow.epochs_that_fit(epochs_done=1, planned=60, last_epoch_s=6.5, now_s=6.5)
    assert slow.epochs_that_fit(epochs_done=2, planned=60, last_epoch_s=6.5, now_s=13.0) == 2 + 39


def test_time_budget_stops_at_the_first_epoch_when_no_other_fits():
    budget = TimeBudget(0.1, start_s=0.0)  # 6 s, the first epoch took 5 s
    assert budget.epochs_that_fit(epochs_done=1, planned=60, last_epoch_s=5.0, now_s=5.0) == 1


@pytest.mark.parametrize("minutes", [0, -1.0])
def test_time_budget_rejects_a_non_positive_limit(minutes):
    with pytest.raises(ValueError, match="time_limit_min"):
        TimeBudget(minutes, start_s=0.0)


def test_time_budget_makes_the_second_epoch_the_last_when_only_it_fits():
    """With room for one more epoch after the first, the schedule ends on it (decayed), rather
    than running it at the peak rate and stopping there."""
    budget = TimeBudget(0.25, start_s=0.0)  # 15 s, the first epoch took 6 s: 9 s left
    assert budget.epochs_that_fit(epochs_done=1, planned=6, last_epoch_s=6.0, now_s=6.0) == 2
    roomy = TimeBudget(0.25, start_s=0.0)  # the first epoch took 4 s: two more fit, judged again later
    assert roomy.epochs_that_fit(epochs_done=1, planned=6, last_epoch_s=4.0, now_s=4.0) == 6

from __future__ import annotations

from typing import get_args

import pytest

from automl.config import ModelFamily, TuningStrategy
from automl.errors import TuningError
from automl.tuning import MODEL_FAMILIES, STRATEGIES, family_space, grid_configs


def test_spec_literals_match_the_tuning_package() -> None:
    assert get_args(ModelFamily) == MODEL_FAMILIES
    assert get_args(TuningStrategy) == STRATEGIES


@pytest.mark.parametrize("family", MODEL_FAMILIES)
@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize(("n_rows", "n_features"), [(60, 2), (5000, 40)])
def test_every_space_contains_its_library_defaults(
    family: str, task: str, n_rows: int, n_features: int
) -> None:
    space = family_space(family, task=task, n_rows=n_rows, n_features=n_features)  # type: ignore[arg-type]
    assert set(space.defaults) == set(space.distributions)
    for name, dist in space.distributions.items():
        assert dist._contains(dist.to_internal_repr(space.defaults[name])), name


def test_forest_default_share_reproduces_sqrt_features() -> None:
    for p in (3, 9, 16, 40, 100):
        share = family_space("random_forest", task="classification", n_rows=500, n_features=p)
        assert max(1, int(share.defaults["max_features"] * p)) == int(p**0.5)
    reg = family_space("extra_trees", task="regression", n_rows=500, n_features=9)
    assert reg.defaults["max_features"] == 1.0


def test_overrides_narrow_fix_and_choose() -> None:
    space = family_space(
        "mlp",
        task="classification",
        n_rows=500,
        n_features=10,
        overrides={
            "hidden_layers": [2, 3],  # narrowed past the default (1): default clipped to 2
            "activation": ["tanh"],
            "alpha": {"low": 1e-4, "high": 1e-2},
            "solver": "adam",  # fixed: not searched
        },
    )
    assert (space.distributions["hidden_layers"].low, space.defaults["hidden_layers"]) == (2, 2)
    assert space.distributions["activation"].choices == ("tanh",)
    assert space.defaults["activation"] == "tanh"
    assert space.distributions["alpha"].log and space.distributions["alpha"].high == 1e-2
    assert "solver" not in space.distributions and space.fixed == {"solver": "adam"}
    assert space.default_config["solver"] == "adam"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"depth": [1, 2]}, "unknown hyperparameter 'depth'; tuned ones: n_estimators"),
        ({"max_depth": [8, 2]}, "low <= high"),
        ({"max_depth": [1, 2, 3]}, r"\[low, high\]"),
        ({"max_depth": {"lo": 1}}, "unknown keys"),
    ],
)
def test_bad_overrides_name_the_field(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(TuningError, match=message):
        family_space("xgboost", task="regression", n_rows=500, n_features=10, overrides=overrides)


def test_unknown_family() -> None:
    with pytest.raises(TuningError, match="unknown model family 'catboost'; allowed: xgboost"):
        family_space("catboost", task="regression", n_rows=10, n_features=2)


def test_grid_is_the_full_product_over_defaults() -> None:
    space = family_space("xgboost", task="regression", n_rows=500, n_features=10)
    configs = grid_configs(space, {"max_depth": [2, 4], "learning_rate": [0.1, 0.3]})
    assert len(configs) == 4
    assert {(c["max_depth"], c["learning_rate"]) for c in configs} == {
        (2, 0.1),
        (2, 0.3),
        (4, 0.1),
        (4, 0.3),
    }
    assert all(c["subsample"] == 1.0 for c in configs)  # unlisted: library default
    with pytest.raises(TuningError, match="non-empty list"):
        grid_configs(space, {"max_depth": []})

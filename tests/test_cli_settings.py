"""`--set section.key=value`, help defaults read from the config dataclasses, and the CLI's logging."""

from __future__ import annotations

import logging
import math

import pytest

from photopop.cli.main import build_parser, configure_logging, main
from photopop.cli.settings import DefaultHelp, config_default, load_with_settings, parse_settings
from photopop.cli.simulate import ifu_config_from_args
from photopop.errors import InputError
from photopop.simulate.ifu import IFUSurveyConfig


def _ifu(*extra: str) -> IFUSurveyConfig:
    return ifu_config_from_args(build_parser().parse_args(["simulate", "ifu", "--out", "x", *extra]))


def test_values_are_toml_and_keys_nest():
    got = parse_settings(["seed=3", "noise.snr_scale=inf", "sample.n_galaxies=12", "filter_system=sdss",
                          "bands=[\"g\", \"r\"]", "noise.label_noise_age = 0.1"], IFUSurveyConfig)
    assert got["seed"] == 3 and got["sample"] == {"n_galaxies": 12} and got["filter_system"] == "sdss"
    assert math.isinf(got["noise"]["snr_scale"]) and got["noise"]["label_noise_age"] == 0.1
    assert got["bands"] == ["g", "r"]


def test_set_reaches_the_config_and_dedicated_options_win():
    cfg = _ifu("--set", "sample.n_galaxies=12", "--set", "noise.snr_scale=2.5", "--set", "seed=4")
    assert cfg.sample.n_galaxies == 12 and cfg.noise.snr_scale == 2.5 and cfg.seed == 4
    cfg = _ifu("--set", "sample.n_galaxies=12", "--galaxies", "7")
    assert cfg.sample.n_galaxies == 7
    # the other settings of a section keep their defaults
    assert cfg.noise == IFUSurveyConfig().noise
    assert _ifu() == IFUSurveyConfig()  # no --set, no --config: the dataclass itself


def test_set_goes_on_top_of_the_config_file(tmp_path):
    path = tmp_path / "survey.toml"
    path.write_text("seed = 9\n[sample]\nn_galaxies = 30\n")
    cfg = load_with_settings(IFUSurveyConfig, path, ["sample.n_galaxies=5"])
    assert cfg.seed == 9 and cfg.sample.n_galaxies == 5


@pytest.mark.parametrize("setting, message", [
    ("sample.n_galaxy=3", r"unknown setting 'n_galaxy' in sample of IFUSurveyConfig.*n_galaxies"),
    ("no_such=1", r"unknown setting 'no_such' in the top level"),
    ("seed.x=1", r"'seed' is a setting of IFUSurveyConfig, not a section"),
    ("sample=3", r"'sample' is a section \(GalaxySampleConfig\); set one of its keys: sample.n_galaxies"),
    ("sample.n_galaxies", r"expected SECTION.KEY=VALUE"),
    ("=3", r"expected SECTION.KEY=VALUE"),
])
def test_unknown_or_malformed_keys_are_refused_by_name(setting, message):
    with pytest.raises(InputError, match=message):
        _ifu("--set", setting)


@pytest.mark.parametrize("setting, message", [
    ("sample.n_galaxies=abc", r"'n_galaxies' of GalaxySampleConfig must be an integer, got 'abc'"),
    ("sample.n_galaxies=2.5", r"must be an integer, got 2.5"),
    ("seed=-1", r"seed"),
    ("filter_system=3", r"'filter_system' of IFUSurveyConfig must be a string, got 3"),
])
def test_values_of_the_wrong_type_are_refused_by_the_loader(setting, message):
    with pytest.raises(InputError, match=message):
        _ifu("--set", setting)


def test_cli_turns_a_bad_setting_into_one_line_and_exit_2(tmp_path, capsys):
    code = main(["simulate", "ifu", "--out", str(tmp_path / "o"), "--set", "sample.n_galaxy=3"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "n_galaxy" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_commands_with_a_config_take_set():
    parser = build_parser()
    for argv in (["demo"], ["reproduce", "liew-cain-2021", "--out", "x"], ["sed", "cv", "--table", "t", "--out", "x"],
                 ["sed", "train", "--table", "t", "--out", "x"], ["simulate", "ifu", "--out", "x"]):
        args = parser.parse_args([*argv, "--set", "seed=1", "--set", "a.b=2"])
        assert args.settings == ["seed=1", "a.b=2"], argv


def test_demo_and_sed_settings_are_checked_against_their_configs():
    from photopop.experiments.demo import DemoConfig, load_demo_config

    cfg = load_demo_config(tiny=True, overrides=parse_settings(["seed=3", "run_images=false"], DemoConfig))
    assert cfg.seed == 3 and cfg.run_images is False and cfg.preset == "tiny"
    with pytest.raises(InputError, match="unknown setting 'max_epoch' in sed.cv.train"):
        parse_settings(["sed.cv.train.max_epoch=2"], DemoConfig)
    from photopop.experiments.sed_cv import SEDCVConfig

    cfg = load_with_settings(SEDCVConfig, None, ["train.max_epochs=3", "split=A", "methods=[\"cnn\"]"])
    assert cfg.train.max_epochs == 3 and cfg.split == "A" and cfg.methods == ("cnn",)


def test_help_defaults_come_from_the_dataclasses(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "ifu", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    cfg = IFUSurveyConfig()
    assert f"number of galaxies (default {cfg.sample.n_galaxies})" in out
    assert f"random seed (default {cfg.seed})" in out
    with pytest.raises(SystemExit):
        main(["sed", "cv", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert f"(default {config_default('experiments.sed_cv:SEDCVConfig', 'train.max_epochs')}, the paper's)" in out
    # before it is printed, the text names the field instead of importing its module
    assert str(DefaultHelp("n (default {default})", "simulate.ifu:IFUSurveyConfig", "seed")) == \
        "n (default IFUSurveyConfig.seed)"


def test_quiet_maps_to_the_log_level(capsys):
    log = logging.getLogger("photopop.cli.test")
    configure_logging(quiet=False)
    configure_logging(quiet=False)  # idempotent: one handler
    log.info("progress note")
    assert capsys.readouterr().err == "progress note\n"
    configure_logging(quiet=True)
    log.info("hidden")
    log.warning("shown")
    assert capsys.readouterr().err == "shown\n"
    assert logging.getLogger("photopop").level == logging.WARNING

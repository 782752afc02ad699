from pathlib import Path

from conftest import BUNDLE_3DSIAM, REPO
from monai.bundle import ConfigWorkflow

from medssl_monai.utils import bundle_root, shared_data_dir


def test_shared_data_dir_setting(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDSSL_DATA_DIR", raising=False)
    assert shared_data_dir() == REPO.parent / "shared" / "data"
    monkeypatch.setenv("MEDSSL_DATA_DIR", str(tmp_path))
    assert shared_data_dir() == tmp_path


def test_bundle_root_follows_the_config_file(tmp_path):
    import shutil

    copy = tmp_path / "elsewhere" / "3dsiam"
    shutil.copytree(BUNDLE_3DSIAM / "configs", copy / "configs")
    wf = ConfigWorkflow(config_file=str(copy / "configs" / "inference.json"), workflow_type="infer", logging_file=False)
    wf.initialize()
    assert Path(wf.bundle_root) == copy.resolve()
    assert Path(wf.parser.get_parsed_content("ckpt")) == copy.resolve() / "models" / "model.pt"
    # outside a workflow: the repository's bundle
    assert Path(bundle_root("3dsiam")) == BUNDLE_3DSIAM

"""The Dockerfile, the Makefile and the README install ClawCrane the same way."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dockerfile_installs_with_make_setup_and_runs_quickstart():
    docker = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^RUN make setup$", docker, re.M)  # the same target the README's commands use
    assert 'CMD ["quickstart"' in docker and 'ENTRYPOINT ["clawcrane"]' in docker
    for copied in re.findall(r"^COPY (.+) \./", docker, re.M):
        for name in copied.split():
            assert (ROOT / name).exists(), f"Dockerfile copies {name}, which is not in the repo"


def test_readme_commands_are_make_targets_that_depend_on_setup():
    readme = (ROOT / "README.md").read_text()
    make = (ROOT / "Makefile").read_text()
    first = [line.split("#")[0].strip() for line in readme.split("```bash", 1)[1].split("```", 1)[0].splitlines() if line.strip()]
    assert first == ["make quickstart", "make test"]
    assert re.search(r"^quickstart: \$\(STAMP\)$", make, re.M) and re.search(r"^test: \$\(STAMP\)$", make, re.M)
    assert "pip install -e '.[test]'" in make
    pins = (ROOT / "pyproject.toml").read_text()
    assert '"torch==2.14.1"' in pins and '"torchvision==0.29.1"' in pins


def test_ci_runs_the_readme_test_command():
    assert re.search(r"^make test$", (ROOT / ".ci/run").read_text(), re.M)


def test_no_package_module_is_hidden_by_gitignore():
    """A .gitignore rule such as a bare 'build/' once hid clawcrane/build/ from every clone: nothing under
    clawcrane/ may be ignored (checked with git when the tests run in a checkout)."""
    import shutil
    import subprocess

    import pytest

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    files = [str(p.relative_to(ROOT)) for p in (ROOT / "clawcrane").rglob("*.py") if "__pycache__" not in p.parts]
    out = subprocess.run(["git", "check-ignore", "--no-index", *files], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.split() == []


def test_readme_cluster_recipe_is_the_job_file_that_slurm_e2e_submits():
    """The README's array job is bench/slurm_array_job.sh line for line (its comments aside), and the
    real-SLURM check submits that file and runs in CI after `make test`."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Cluster use", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    job = (ROOT / "bench/slurm_array_job.sh").read_text().splitlines()
    code = [line for line in job if line and (not line.startswith("#") or line.startswith(("#!", "#SBATCH")))]
    assert block == code
    e2e = (ROOT / "bench/slurm_e2e.sh").read_text()
    assert 'JOB="$REPO/bench/slurm_array_job.sh"' in e2e and "sbatch --wait" in e2e
    ci = (ROOT / ".ci/run").read_text()
    assert ci.index("make test") < ci.index("bench/slurm_e2e.sh")

"""A run that dies half way keeps what it finished, and the re-run completes only the rest."""

from __future__ import annotations



from conftest import metadata_of
from resources.generator import GeneratorError, ZImageGenerator


def test_a_failed_run_resumes_without_regenerating_what_it_stored(project, monkeypatch):
    project.ingest()
    (batch_id,) = project.mint(skus=["MJ01-XS-Red", "MJ01-XS-Orange"])  # 2 looks x 4 views = 8 images
    project.resources["generator"] = ZImageGenerator(models_dir=project.resources["generator"].models_dir, batch_size=2)

    real_call = ZImageGenerator._call_pipeline
    calls = []

    def dies_on_third_call(self, pipe, chunk, embeddings):
        calls.append(len(chunk))
        if len(calls) == 3:
            raise GeneratorError("GPU lost (injected)")
        return real_call(self, pipe, chunk, embeddings)

    monkeypatch.setattr(ZImageGenerator, "_call_pipeline", dies_on_third_call)
    failed = project.generate(batch_id, raise_on_error=False)
    assert not failed.success
    message = next(e for e in failed.all_events if e.is_step_failure).step_failure_data.error.message
    assert "GPU lost" in message
    stored = project.state_db.receipts(batch_id)
    assert 0 < len(stored) < 8
    for receipt in stored:  # every receipt points at a stored image
        assert project.store.exists(receipt["storage_key"])
    assert project.state_db.batch(batch_id)["status"] != "published"

    monkeypatch.setattr(ZImageGenerator, "_call_pipeline", real_call)
    images = metadata_of(project.generate(batch_id), "product_images")
    assert images["already_stored"] == len(stored)
    assert images["generated"] + images["cache_hits"] == 8 - len(stored)
    assert len(project.state_db.receipts(batch_id)) == 8
    assert project.state_db.batch(batch_id)["status"] == "published"

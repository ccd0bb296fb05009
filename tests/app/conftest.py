"""The app's job manager is one per process (``st.cache_resource``), shared by every AppTest here.

A job one test leaves running (a retrain it only started, say) would hold the one training slot and
make a later test's job wait in the queue; each test therefore ends its jobs before the next starts.
"""

import pytest


@pytest.fixture(autouse=True)
def _no_job_outlives_its_test():
    yield
    from tltools.streamlit_bridge import job_manager

    manager = job_manager()
    for job in manager.jobs():
        if not job.finished:
            manager.stop(job.job_id)
    for job in manager.jobs():
        manager.wait(job.job_id, timeout=120)

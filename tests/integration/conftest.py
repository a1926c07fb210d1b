"""pytest fixtures for the dmkv integration tests (helpers: dmkvtest.py).

make_agent starts agents and stops every one of them when the test ends,
whatever the outcome; when a test fails, each agent's log is attached to
the report.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dmkvtest import Agent, Logger  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for a in getattr(item, "_dmkv_agents", []) + getattr(item, "_dmkv_loggers", []):
            log = a.read_log()
            if len(log) > 20000:
                log = "...\n" + log[-20000:]
            rep.sections.append(("dmkv %s log (%s)" % (a.name, a.log_path), log))


@pytest.fixture
def make_agent(tmp_path, request):
    """make_agent(*flags, name=None, node_id=None, start=True, data_dir=None, port=None, host=...)"""
    started = []
    request.node._dmkv_agents = started

    def make(*flags, name=None, node_id=None, start=True, data_dir=None, port=None, host="127.0.0.1"):
        n = len(started) + 1
        a = Agent(tmp_path, name=name or "agent%d" % n, node_id=node_id or n, args=flags,
                  data_dir=data_dir, port=port, host=host)
        started.append(a)
        if start:
            a.start()
        return a

    yield make
    errors = []
    for a in started:
        try:
            a.stop()
        except Exception as e:  # keep stopping the others
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
def agent(make_agent):
    return make_agent()


@pytest.fixture
def make_logger(tmp_path, request):
    """make_logger(name=None, http=False, port=None, log_file=None, args=(), start=True):
    `dmkv logger` processes, every one stopped when the test ends."""
    started = []
    request.node._dmkv_loggers = started

    def make(name=None, http=False, port=None, log_file=None, args=(), start=True):
        lg = Logger(tmp_path, name=name or "logger%d" % (len(started) + 1), port=port, http=http,
                    log_file=log_file, args=args)
        started.append(lg)
        if start:
            lg.start()
        return lg

    yield make
    errors = []
    for lg in started:
        try:
            lg.stop()
        except Exception as e:  # keep stopping the others
            errors.append(e)
    if errors:
        raise errors[0]

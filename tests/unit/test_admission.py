"""The admission bound's arithmetic (appliance.admission)."""

from __future__ import annotations

import pytest

from appliance.admission import Admission
from appliance.errors import ServiceUnavailable


def test_reservations_fit_under_the_bound_and_are_given_back() -> None:
    admission = Admission(max_pending_events=100)
    first = admission.admit(60)
    second = admission.admit(40)
    assert admission.pending_events == 100 and admission.overloaded(1)
    with pytest.raises(ServiceUnavailable) as refused:
        admission.admit(1)
    assert refused.value.headers == {"Retry-After": "2"}
    assert admission.pending_events == 100  # a refusal reserves nothing
    second.lower_to(10)  # the batch turned out smaller than it could have been
    assert admission.pending_events == 70
    second.lower_to(20)  # never raised again
    assert admission.pending_events == 70
    with admission.admit(30):
        assert admission.pending_events == 100
    assert admission.pending_events == 70
    first.release()
    second.release()
    second.release()  # twice is once
    assert admission.pending_events == 0 and not admission.overloaded(100)


def test_one_request_is_admitted_while_nothing_is_pending_even_past_the_bound() -> None:
    admission = Admission(max_pending_events=10)
    with admission.admit(2000):
        assert admission.pending_events == 2000
        with pytest.raises(ServiceUnavailable):
            admission.admit(1)
    assert admission.pending_events == 0


def test_a_ticket_is_given_back_when_the_request_fails() -> None:
    admission = Admission(max_pending_events=100)
    with pytest.raises(RuntimeError), admission.admit(50):
        raise RuntimeError("the request failed")
    assert admission.pending_events == 0

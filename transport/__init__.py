"""kbroker.transport — arrives with the broker (issue: kbroker start --workers N)."""

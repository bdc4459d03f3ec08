"""A checkout as its clients reach it, below the HTTP API and the operator CLI alike: the Temporal-facing calls
into CheckoutSaga and CancelSale (`saga`), a checkout's view and cancellation from its saga or its booking record
(`bookings`), a cancellation's parts (`parts`), and the problem a refusal or an outage answers with (`answers`,
`problems`).

Layers: this package imports workflows/, services/, settings/ (and Temporal's client), never api/ or booking_saga/;
api/ and booking_saga/ import it. Nothing here knows about HTTP routes or rendering: a call answers a CheckoutView
or raises ProblemError, which the API renders as problem+json (api/problems.py) and the CLI prints.
"""

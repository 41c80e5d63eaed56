"""The controller service on the Rx: call-up chord, login and menu screens, rendering, reconcile."""

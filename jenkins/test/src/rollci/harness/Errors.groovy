package rollci.harness

/** Jenkins' hudson.AbortException: a step failed with a message and no stack trace. */
class AbortException extends IOException {
    AbortException(String message) { super(message) }
}

/** Jenkins' FlowInterruptedException: a timeout (or abort) interrupted the body; result ABORTED. */
class FlowInterruptedException extends RuntimeException {
    FlowInterruptedException(String message) { super(message) }
}

// rollciCleanup: `rollci cleanup`: destroy everything the journal recorded; safe to call twice.
// Help: rollciCleanup.txt.
def call(Map args = [:]) {
    rollciStep(step: 'rollciCleanup', command: 'cleanup', args: args, credentials: ['cloud', 'clouds'],
        script: 'exec "${ROLLCI_BIN:-rollci}" cleanup')
}

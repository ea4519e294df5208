// rollciVerify: `rollci verify` before or after the upgrade. Help: rollciVerify.txt.
def call(Map args = [:]) {
    if (!(args.phase in ['before', 'after'])) {
        error("rollciVerify: `phase` must be 'before' or 'after', got '${args.phase}'")
    }
    rollciStep(step: 'rollciVerify', command: "verify:${args.phase}", args: args, extra: ['phase'],
        credentials: ['cloud', 'clouds'], env: ["ROLLCI_PHASE=${args.phase}"],
        script: 'exec "${ROLLCI_BIN:-rollci}" verify')
}

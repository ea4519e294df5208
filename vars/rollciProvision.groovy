// rollciProvision: `rollci provision`: acquire and prepare the host, build the lab. Help: rollciProvision.txt.
def call(Map args = [:]) {
    rollciStep(step: 'rollciProvision', command: 'provision', args: args, credentials: ['cloud', 'clouds'],
        script: 'exec "${ROLLCI_BIN:-rollci}" provision')
}

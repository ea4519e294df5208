// rollciUpgrade: `rollci upgrade`: upgrade to the to-release while probing availability. Help: rollciUpgrade.txt.
def call(Map args = [:]) {
    rollciStep(step: 'rollciUpgrade', command: 'upgrade', args: args, credentials: ['cloud', 'clouds'],
        script: 'exec "${ROLLCI_BIN:-rollci}" upgrade')
}

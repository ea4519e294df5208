// rollciDeploy: `rollci deploy`: deploy the from-release. Help: rollciDeploy.txt.
def call(Map args = [:]) {
    rollciStep(step: 'rollciDeploy', command: 'deploy', args: args, credentials: ['cloud', 'clouds'],
        script: 'exec "${ROLLCI_BIN:-rollci}" deploy')
}

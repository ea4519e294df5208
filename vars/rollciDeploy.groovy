// rollciDeploy: `rollci deploy`: deploy the from-release. Help: rollciDeploy.txt.
def call(Map args = [:]) {
    rollciStep(step: 'rollciDeploy', command: 'deploy', args: args,
        script: '"${ROLLCI_BIN:-rollci}" deploy')
}

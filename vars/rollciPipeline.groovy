// rollciPipeline: the whole rollci pipeline as one call, like jenkins-infra's buildPlugin():
//   @Library('rollci') _
//   rollciPipeline(config: 'labs/demo/rollci.toml')
// The same stages as `rollci jenkins jenkinsfile` generates. Help: rollciPipeline.txt.
def call(Map args = [:]) {
    Map config = [
        agentLabel: 'rollci', workspace: '.rollci', checkFailure: 'UNSTABLE', timeoutMinutes: 120,
        keepBuilds: 30, fromRelease: '', toRelease: '', cloudCredentialsId: null, cloudsYamlCredentialsId: null,
        esCredentialsId: null,
    ] + args
    List allowed = ['config', 'agentLabel', 'workspace', 'checkFailure', 'timeoutMinutes', 'keepBuilds',
        'fromRelease', 'toRelease', 'cloudCredentialsId', 'cloudsYamlCredentialsId', 'esCredentialsId']
    List unknown = config.keySet().toList() - allowed
    if (unknown) {
        error("rollciPipeline: unknown argument(s) ${unknown}; it takes ${allowed}")
    }
    if (!config.config) {
        error('rollciPipeline: `config` (the lab file, relative to the workspace) is required')
    }
    if (!(config.checkFailure in ['UNSTABLE', 'FAILURE'])) {
        error("rollciPipeline: `checkFailure` must be 'UNSTABLE' or 'FAILURE', got '${config.checkFailure}'")
    }
    Map cloud = [:]   // the cloud credentials given, passed to every step that takes them
    for (String key in ['cloudCredentialsId', 'cloudsYamlCredentialsId']) {
        if (config[key]) {
            cloud[key] = config[key]
        }
    }
    Map checked = cloud + [checkFailure: config.checkFailure]
    Map report = config.esCredentialsId ? [esCredentialsId: config.esCredentialsId] : [:]

    pipeline {
        agent { label config.agentLabel }
        options {
            timeout(time: config.timeoutMinutes, unit: 'MINUTES')
            buildDiscarder(logRotator(numToKeepStr: "${config.keepBuilds}"))
            disableConcurrentBuilds()
        }
        parameters {
            string(name: 'FROM_RELEASE', defaultValue: config.fromRelease,
                description: 'Release deployed first (empty: the lab file\'s)')
            string(name: 'TO_RELEASE', defaultValue: config.toRelease,
                description: 'Release upgraded to (empty: the lab file\'s)')
        }
        environment {
            // Groovy strings here only build environment values; no shell ever sees them as code.
            ROLLCI_CONFIG = "${config.config}"
            ROLLCI_WORKSPACE = "${config.workspace}"
            ROLLCI_FROM_RELEASE = "${params.FROM_RELEASE}"
            ROLLCI_TO_RELEASE = "${params.TO_RELEASE}"
        }
        stages {
            stage('Setup') { steps { rollciSetup() } }
            stage('Pre-Deployment') { steps { rollciProvision(cloud) } }
            stage('Deployment') { steps { rollciDeploy(cloud) } }
            stage('Post-Deployment Validation') { steps { rollciVerify(checked + [phase: 'before']) } }
            stage('Upgrade') { steps { rollciUpgrade(checked) } }
            stage('Post-Upgrade Validation') { steps { rollciVerify(checked + [phase: 'after']) } }
            stage('Reporting') { steps { rollciReport(report) } }
            stage('Clean Up') { steps { rollciCleanup(cloud) } }
        }
        post {
            always { rollciCleanup(cloud) }
        }
    }
}

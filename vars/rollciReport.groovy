// rollciReport: `rollci report`: write the reports; push them to Elasticsearch when ROLLCI_ES_URL is set.
// Help: rollciReport.txt.
def call(Map args = [:]) {
    rollciStep(step: 'rollciReport', command: 'report', args: args, credentials: ['es'],
        script: 'exec "${ROLLCI_BIN:-rollci}" report')
}

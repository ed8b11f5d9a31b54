// Runs ci-templates/jenkins/vars/archgate.groovy outside Jenkins with the
// pipeline steps it uses recorded, and checks the command lines it runs and
// how exit codes map to build results. Usage: groovy step_test.groovy REPO_DIR
// Prints one "ok - NAME" line per check; exits 1 on the first failure.

def repo = new File(args ? args[0] : '.')
def stepFile = new File(repo, 'ci-templates/jenkins/vars/archgate.groovy')
def exampleFile = new File(repo, 'ci-templates/jenkins/Jenkinsfile.example')

int checks = 0
def check = { String name, boolean ok, Object detail = '' ->
    if (!ok) {
        System.err.println("not ok - ${name}: ${detail}")
        System.exit(1)
    }
    checks++
    println("ok - ${name}")
}

/** A fresh step with stubbed pipeline steps; `exitCode` is what `sh` returns. */
def newStep = { int exitCode, Set<String> existing = ['archgate-report', 'archgate-report/junit.xml'] as Set ->
    def calls = []
    def env = [:]
    def binding = new Binding()
    binding.setVariable('calls', calls)
    binding.setVariable('currentBuild', [result: null])
    binding.setVariable('sh', { Map m ->
        calls << [step: 'sh', script: m.script, env: new HashMap(env)]
        return exitCode
    })
    binding.setVariable('withEnv', { List vars, Closure body ->
        vars.each { v -> def (k, val) = v.split('=', 2); env[k] = val }
        calls << [step: 'withEnv', vars: vars]
        try { body() } finally { vars.each { v -> env.remove(v.split('=', 2)[0]) } }
    })
    binding.setVariable('usernamePassword', { Map m -> [kind: 'usernamePassword'] + m })
    binding.setVariable('file', { Map m -> [kind: 'file'] + m })
    binding.setVariable('withCredentials', { List creds, Closure body ->
        calls << [step: 'withCredentials', creds: creds]
        env['CI_REGISTRY_USER'] = 'jenkins-user'
        env['CI_REGISTRY_PASSWORD'] = 's3cret-from-credentials'
        try { body() } finally { env.remove('CI_REGISTRY_USER'); env.remove('CI_REGISTRY_PASSWORD') }
    })
    binding.setVariable('fileExists', { String p -> existing.contains(p) })
    binding.setVariable('junit', { Map m -> calls << [step: 'junit'] + m })
    binding.setVariable('archiveArtifacts', { Map m -> calls << [step: 'archiveArtifacts'] + m })
    binding.setVariable('error', { String msg -> calls << [step: 'error', message: msg]; throw new RuntimeException(msg) })
    def script = new GroovyShell(binding).parse(stepFile)
    return [script, calls, binding]
}

// --- command lines ---------------------------------------------------------
def (step) = newStep(0)
check('run by default, reports in archgate-report',
      step.commandLine([:]) == ['archgate', 'run', '--report-dir', 'archgate-report'],
      step.commandLine([:]))
check('run with config, required platforms and a verify-only image',
      step.commandLine(config: 'ci/archgate.toml', platforms: ['linux/amd64', 'linux/arm64'],
                       image: '10.0.0.5:5000/team/app:v1', reportDir: 'out') ==
      ['archgate', '--config', 'ci/archgate.toml', 'run', '--image', '10.0.0.5:5000/team/app:v1',
       '--platform', 'linux/amd64,linux/arm64', '--report-dir', 'out'],
      step.commandLine(config: 'ci/archgate.toml', platforms: ['linux/amd64', 'linux/arm64'], image: 'x'))
check('verify takes the image as an argument',
      step.commandLine(command: 'verify', image: 'oci:out/app:v1', binary: '/opt/archgate/bin/archgate') ==
      ['/opt/archgate/bin/archgate', 'verify', 'oci:out/app:v1', '--report-dir', 'archgate-report'])
check('merge gathers per-architecture digests',
      step.commandLine(command: 'merge', target: 'r:5000/app:v1',
                       sources: ['r:5000/app@sha256:aa', 'r:5000/app@sha256:bb']) ==
      ['archgate', 'merge', '--target', 'r:5000/app:v1', 'r:5000/app@sha256:aa', 'r:5000/app@sha256:bb'])
check('build of one platform on an architecture-labelled agent',
      step.commandLine(command: 'build', platforms: ['linux/mips64le'], tag: '42-mips64le') ==
      ['archgate', 'build', '--platform', 'linux/mips64le', '--tag', '42-mips64le'])
check('promote: source, release tag and the public key',
      step.commandLine(command: 'promote', image: 'r:5000/app@sha256:aa', target: 'r:5000/app:1.0', key: 'attest.pub.pem') ==
      ['archgate', 'promote', 'r:5000/app@sha256:aa', 'r:5000/app:1.0', '--key', 'attest.pub.pem'])
def noKey = null
try { step.commandLine(command: 'promote', image: 'x', target: 'y') } catch (IllegalArgumentException e) { noKey = e.message }
check('promote without a key is refused, naming it', noKey?.contains('key'), noKey)
def (signing, signingCalls) = newStep(0)
signing.call(command: 'verify', image: 'r:5000/app@sha256:aa', attestKeyCredentialsId: 'attest-key')
def fileCred = signingCalls.find { it.step == 'withCredentials' }?.creds?.find { it.kind == 'file' }
check('the signing key is a Secret file credential in ARCHGATE_ATTEST__KEY',
      fileCred?.credentialsId == 'attest-key' && fileCred?.variable == 'ARCHGATE_ATTEST__KEY' &&
      !signingCalls.find { it.step == 'sh' }.script.contains('attest-key'), signingCalls)
def unknown = null
try { step.commandLine(command: 'deploy') } catch (IllegalArgumentException e) { unknown = e.message }
check('an unknown command is refused, naming it', unknown?.contains("'deploy'"), unknown)
check('shell quoting survives quotes and spaces',
      step.shellQuote("it's a b") == "'it'\"'\"'s a b'", step.shellQuote("it's a b"))

// --- execution, credentials, reports ---------------------------------------
def (ok, okCalls) = newStep(0)
def rc = ok.call(platforms: ['linux/amd64'], registry: '10.0.0.5:5000', credentialsId: 'registry-push')
def sh = okCalls.find { it.step == 'sh' }
check('exit 0 passes', rc == 0 && !okCalls.any { it.step == 'error' }, okCalls)
check('the command is single-quoted', sh.script == "'archgate' 'run' '--platform' 'linux/amd64' '--report-dir' 'archgate-report'", sh.script)
check('credentials reach archgate only as environment variables',
      sh.env.CI_REGISTRY == '10.0.0.5:5000' && sh.env.CI_REGISTRY_USER == 'jenkins-user' &&
      !sh.script.contains('s3cret'), sh)
def creds = okCalls.find { it.step == 'withCredentials' }.creds[0]
check('a usernamePassword credential mapped to CI_REGISTRY_USER/PASSWORD',
      creds.credentialsId == 'registry-push' && creds.usernameVariable == 'CI_REGISTRY_USER' &&
      creds.passwordVariable == 'CI_REGISTRY_PASSWORD', creds)
check('JUnit and the report directory are published',
      okCalls.any { it.step == 'junit' && it.testResults == 'archgate-report/junit.xml' } &&
      okCalls.any { it.step == 'archiveArtifacts' && it.artifacts == 'archgate-report/**' }, okCalls)

def (noReg, noRegCalls) = newStep(0)
def noRegMsg = null
try { noReg.call(credentialsId: 'x') } catch (RuntimeException e) { noRegMsg = e.message }
check('credentialsId without registry is an error naming what to add',
      noRegMsg?.contains('registry') && !noRegCalls.any { it.step == 'sh' }, noRegMsg)

def (bad, badCalls, badBinding) = newStep(1)
def badMsg = null
try { bad.call([:]) } catch (RuntimeException e) { badMsg = e.message }
check('exit 1 fails the build as a wrong image, after publishing JUnit',
      badMsg?.contains('gate failed') && badCalls.findIndexOf { it.step == 'junit' } < badCalls.findIndexOf { it.step == 'error' } &&
      badBinding.getVariable('currentBuild').result == null, badCalls)

def (infra, infraCalls, infraBinding) = newStep(3)
def infraMsg = null
try { infra.call([:]) } catch (RuntimeException e) { infraMsg = e.message }
check('exit 3 is an infrastructure failure (NOT_BUILT), not a bad image',
      infraMsg?.contains('infrastructure') && infraBinding.getVariable('currentBuild').result == 'NOT_BUILT', infraMsg)

def (usage, usageCalls) = newStep(2, [] as Set)
def usageMsg = null
try { usage.call([:]) } catch (RuntimeException e) { usageMsg = e.message }
check('exit 2 is a configuration error; no reports to publish is fine',
      usageMsg?.contains('configuration') && !usageCalls.any { it.step == 'junit' }, usageMsg)

// --- the example pipeline compiles -----------------------------------------
// `@Library` is resolved by Jenkins itself; the rest must be valid Groovy.
def example = exampleFile.text
check('Jenkinsfile.example loads the archgate library', example.contains("@Library('archgate') _"))
new GroovyShell().parse(example.replace("@Library('archgate') _", ''), 'Jenkinsfile.example')
check('Jenkinsfile.example compiles', true)

println("${checks} checks passed")

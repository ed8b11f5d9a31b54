// archgate — Jenkins shared-library step.
//
//   archgate(config: 'archgate.toml', platforms: ['linux/amd64', 'linux/arm64'])
//   archgate(command: 'verify', image: '10.0.0.5:5000/team/app:v1',
//            registry: '10.0.0.5:5000', credentialsId: 'registry-push')
//   archgate(command: 'build', platforms: ['linux/arm64'], tag: "${env.BUILD_NUMBER}-arm64")
//   archgate(command: 'merge', sources: [imgAmd64, imgArm64], target: '10.0.0.5:5000/team/app:v1')
//   archgate(command: 'verify', image: img, attestKeyCredentialsId: 'archgate-attest-key')
//   archgate(command: 'promote', image: img, target: '10.0.0.5:5000/team/app:1.0', key: 'ci/attest.pub.pem')
//
// Options (all optional):
//   command       'run' (default), 'build', 'merge', 'verify' or 'promote'
//   config        archgate.toml path (default: ./archgate.toml when present)
//   platforms     list of os/arch[/variant]; for run: the required platforms
//   image         run/verify: the image to verify (run becomes verify-only)
//   target, sources, tag   merge/build arguments
//   registry, credentialsId   a usernamePassword credential for that registry host
//   attestKeyCredentialsId    a Secret file credential with the PKCS#8 PEM P-256 key: run/verify
//                 sign the verdict and attach it to the index digest (ARCHGATE_ATTEST__KEY)
//   key           promote: the public key (PEM file) the PASSED statement must be signed with;
//                 image is the source, target the release tag
//   reportDir     report directory (default 'archgate-report')
//   binary        the archgate executable (default 'archgate' on PATH)
//
// Exit codes: 0 passed; 1 the gate failed (the image is wrong) -> build FAILURE;
// 2 configuration/usage -> FAILURE; 3 infrastructure (registry down, emulator
// missing) -> NOT_BUILT, so a flaky agent is not reported as a bad image.
// JUnit results are published on every outcome (the junit step alone would only
// mark the build UNSTABLE; the exit code gates).

def call(Map cfg = [:]) {
    List<String> argv = commandLine(cfg)
    String reportDir = cfg.reportDir ?: 'archgate-report'
    // Single-quoted for the shell, and never interpolated by Groovy with secrets:
    // credentials reach archgate only as environment variables.
    String script = argv.collect { shellQuote(it) }.join(' ')
    int code
    if (cfg.credentialsId && !cfg.registry) {
        error("archgate: credentialsId needs registry: the registry host (HOST:PORT) the credential is for")
    }
    List creds = []
    if (cfg.credentialsId) {
        creds << usernamePassword(credentialsId: cfg.credentialsId,
                                  usernameVariable: 'CI_REGISTRY_USER',
                                  passwordVariable: 'CI_REGISTRY_PASSWORD')
    }
    if (cfg.attestKeyCredentialsId) {
        // A "Secret file" credential: Jenkins writes it to a temporary file and sets the
        // variable to its path; archgate reads it as `[attest] key` and signs the verdict.
        creds << file(credentialsId: cfg.attestKeyCredentialsId, variable: 'ARCHGATE_ATTEST__KEY')
    }
    List vars = cfg.registry ? ["CI_REGISTRY=${cfg.registry}"] : []
    if (creds) {
        withEnv(vars) {
            withCredentials(creds) {
                code = sh(script: script, returnStatus: true)
            }
        }
    } else {
        code = sh(script: script, returnStatus: true)
    }
    if (fileExists("${reportDir}/junit.xml")) {
        junit(testResults: "${reportDir}/junit.xml", allowEmptyResults: true)
    }
    if (fileExists(reportDir)) {
        archiveArtifacts(artifacts: "${reportDir}/**", allowEmptyArchive: true)
    }
    return verdict(code)
}

/** The archgate command line for these options (pure: tested without Jenkins). */
List<String> commandLine(Map cfg) {
    String command = cfg.command ?: 'run'
    if (!(command in ['run', 'build', 'merge', 'verify', 'promote'])) {
        throw new IllegalArgumentException("archgate: unknown command '${command}' (run, build, merge, verify or promote)")
    }
    List<String> argv = [cfg.binary ?: 'archgate']
    if (cfg.config) {
        argv += ['--config', cfg.config.toString()]
    }
    argv << command
    String platforms = (cfg.platforms ?: []).join(',')
    String reportDir = cfg.reportDir ?: 'archgate-report'
    switch (command) {
        case 'run':
            if (cfg.image) { argv += ['--image', cfg.image.toString()] }
            if (platforms) { argv += ['--platform', platforms] }
            argv += ['--report-dir', reportDir]
            break
        case 'verify':
            if (cfg.image) { argv << cfg.image.toString() }
            if (platforms) { argv += ['--platform', platforms] }
            argv += ['--report-dir', reportDir]
            break
        case 'merge':
            if (cfg.target) { argv += ['--target', cfg.target.toString()] }
            if (platforms) { argv += ['--platform', platforms] }
            argv += (cfg.sources ?: []).collect { it.toString() }
            break
        case 'build':
            if (platforms) { argv += ['--platform', platforms] }
            if (cfg.tag) { argv += ['--tag', cfg.tag.toString()] }
            break
        case 'promote':
            if (!cfg.image || !cfg.target || !cfg.key) {
                throw new IllegalArgumentException("archgate: promote needs image (the verified source), target (the release tag) and key (the public key file)")
            }
            argv += [cfg.image.toString(), cfg.target.toString(), '--key', cfg.key.toString()]
            if (platforms) { argv += ['--platform', platforms] }
            break
    }
    return argv
}

/** Maps archgate's exit code to the build result; returns the code when 0. */
int verdict(int code) {
    switch (code) {
        case 0:
            return 0
        case 1:
            error('archgate: the gate failed (exit 1): the image is wrong; see the test results and archgate-report/coverage.md')
            break
        case 2:
            error('archgate: configuration or usage error (exit 2); see the log')
            break
        default:
            currentBuild.result = 'NOT_BUILT'
            error("archgate: infrastructure failure (exit ${code}): registry, network, disk or emulator; nothing was decided")
    }
    return code
}

/** POSIX single-quoting. */
String shellQuote(String s) {
    return "'" + s.replace("'", "'\"'\"'") + "'"
}

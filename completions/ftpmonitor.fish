# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_ftpmonitor_global_optspecs
    string join \n c/config= f/foreground pid-file= log-file= state-dir= run-as= log-level= metrics-addr= log-format= user= password-file= tls ca-file= active timeout= cooldown= no-recursive delete exclude= include= parallel= rescan-interval= max-delete= once dry-run publish-changing bwlimit= poll= remove-source archive-dir= temp-dir= chmod= chmod-dirs= order= last= on-upload= on-failure= min-age= max-age= h/help V/version
end

function __fish_ftpmonitor_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_ftpmonitor_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_ftpmonitor_using_subcommand
    set -l cmd (__fish_ftpmonitor_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -s c -l config -d 'TOML config file; command-line values override it' -r -F
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l pid-file -d 'PID file [default: /var/run/ftpmonitor.pid as root, else $XDG_RUNTIME_DIR/ftpmonitor.pid]' -r -F
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l log-file -d 'Log file, `-` for stderr only [default: /var/log/ftpmonitor.log as root, else $XDG_STATE_HOME/ftpmonitor/ftpmonitor.log]' -r -F
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l state-dir -d 'Working directory and sync journal [default: /var/lib/ftpmonitor as root, else $XDG_STATE_HOME/ftpmonitor]' -r -F
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l run-as -d 'After the PID and log files exist, drop root privileges to USER' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l log-level -d 'error, warn, info or debug [default: info]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l metrics-addr -d 'Serve Prometheus metrics at http://ADDR:PORT/metrics (a port alone listens on loopback) [default: off]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l log-format -d 'text (`<timestamp> - <message>`) or json (one object a line: ts, level, msg, and path, bytes, ms or error where they apply) [default: text]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l user -d 'FTP login [default: anonymous, or the login ~/.netrc gives for HOST]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l password-file -d 'File whose first line is the password' -r -F
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l ca-file -d 'Extra CA certificate(s), PEM, trusted for --tls' -r -F
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l timeout -d 'Connect, reply and data timeout: a server silent this long is given up and retried [default: 30s]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l cooldown -d 'Quiet period before a changed file is uploaded: 5, 0.5, 500ms, 2s [default: 5]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l exclude -d 'Skip paths matching GLOB (relative to WATCH_DIR); repeatable' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l include -d 'Sync only paths matching GLOB (excludes still win); repeatable [default: everything]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l parallel -d 'FTP connections used for transfers [default: 4]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l rescan-interval -d 'Safety reconcile period, 0 turns it off [default: 1h]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l max-delete -d 'With --delete, hold a reconcile that would delete more than this share of synced files [default: 50]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l bwlimit -d 'Total upload rate over all connections: 500k, 10M, off, or a timetable "08:00,512k 18:00,10M 23:00,off" (local time) [default: off]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l poll -d 'Watch by polling at this interval instead of inotify (NFS, SMB, FUSE: other machines\' writes raise no events)' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l archive-dir -d 'Move each local file to DIR (same path relative to WATCH_DIR) once its upload is verified; DIR outside WATCH_DIR' -r -F
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l temp-dir -d 'Remote directory to store uploads in under temporary names, renamed into place from there (absolute, or relative to REMOTE_DIR) [default: beside the final name]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l chmod -d 'Octal mode (644) set with SITE CHMOD on each uploaded file before it is renamed into place [default: the server\'s]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l chmod-dirs -d 'Octal mode (755) set with SITE CHMOD on each remote directory the tool creates [default: the server\'s]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l order -d 'Order ready files are sent and published in, per directory: arrival, mtime, name, size [default: arrival, with no order kept between connections]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l last -d 'Publish files matching GLOB (*.done, *.ok) only after every other pending file of their directory; repeatable' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l on-upload -d 'Program run (no shell) after each verified upload; the file is in FTPMONITOR_PATH, _RELPATH, _REMOTE_PATH, _SIZE' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l on-failure -d 'Program run (no shell) when a file\'s failure is first logged and when it is given up; FTPMONITOR_ERROR says why' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l min-age -d 'Upload a file only once its mtime is DUR old (writers that pause without closing): 30s, 10m, off [default: off]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l max-age -d 'Leave files whose mtime is older than DUR alone (the first sync of an old folder): 30d, off [default: off]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -s f -l foreground -d 'Do not fork; log lines also go to stderr (systemd, launchd, containers)'
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l tls -d 'Explicit FTPS (AUTH TLS); the certificate is verified'
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l active -d 'Active mode (PORT) instead of passive (EPSV, falling back to PASV)'
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l no-recursive -d 'Watch and sync the top level only'
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l delete -d 'Propagate local deletions and renames to the server'
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l once -d 'Reconcile the whole tree once, then exit'
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l dry-run -d 'Log what would be done, change nothing remotely'
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l publish-changing -d 'Publish a copy of a file that never holds still (a growing log) even if it changed while it was read'
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -l remove-source -d 'Delete each local file once its upload is verified (move mode; conflicts with --delete)'
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -s V -l version -d 'Print version'
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -a "check" -d 'Validate the configuration, test the server, print a report and exit'
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -a "status" -d 'Tell whether the daemon runs, with its PID and what it has synced'
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -a "pause" -d 'Stop starting transfers (running ones finish); watching and queueing go on, also across a restart'
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -a "resume" -d 'Start transfers again after `ftpmonitor pause`'
complete -c ftpmonitor -n "__fish_ftpmonitor_needs_command" -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -s c -l config -d 'TOML config file; command-line values override it' -r -F
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l pid-file -d 'PID file [default: /var/run/ftpmonitor.pid as root, else $XDG_RUNTIME_DIR/ftpmonitor.pid]' -r -F
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l log-file -d 'Log file, `-` for stderr only [default: /var/log/ftpmonitor.log as root, else $XDG_STATE_HOME/ftpmonitor/ftpmonitor.log]' -r -F
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l state-dir -d 'Working directory and sync journal [default: /var/lib/ftpmonitor as root, else $XDG_STATE_HOME/ftpmonitor]' -r -F
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l run-as -d 'After the PID and log files exist, drop root privileges to USER' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l log-level -d 'error, warn, info or debug [default: info]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l metrics-addr -d 'Serve Prometheus metrics at http://ADDR:PORT/metrics (a port alone listens on loopback) [default: off]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l log-format -d 'text (`<timestamp> - <message>`) or json (one object a line: ts, level, msg, and path, bytes, ms or error where they apply) [default: text]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l user -d 'FTP login [default: anonymous, or the login ~/.netrc gives for HOST]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l password-file -d 'File whose first line is the password' -r -F
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l ca-file -d 'Extra CA certificate(s), PEM, trusted for --tls' -r -F
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l timeout -d 'Connect, reply and data timeout: a server silent this long is given up and retried [default: 30s]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l cooldown -d 'Quiet period before a changed file is uploaded: 5, 0.5, 500ms, 2s [default: 5]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l exclude -d 'Skip paths matching GLOB (relative to WATCH_DIR); repeatable' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l include -d 'Sync only paths matching GLOB (excludes still win); repeatable [default: everything]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l parallel -d 'FTP connections used for transfers [default: 4]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l rescan-interval -d 'Safety reconcile period, 0 turns it off [default: 1h]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l max-delete -d 'With --delete, hold a reconcile that would delete more than this share of synced files [default: 50]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l bwlimit -d 'Total upload rate over all connections: 500k, 10M, off, or a timetable "08:00,512k 18:00,10M 23:00,off" (local time) [default: off]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l poll -d 'Watch by polling at this interval instead of inotify (NFS, SMB, FUSE: other machines\' writes raise no events)' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l archive-dir -d 'Move each local file to DIR (same path relative to WATCH_DIR) once its upload is verified; DIR outside WATCH_DIR' -r -F
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l temp-dir -d 'Remote directory to store uploads in under temporary names, renamed into place from there (absolute, or relative to REMOTE_DIR) [default: beside the final name]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l chmod -d 'Octal mode (644) set with SITE CHMOD on each uploaded file before it is renamed into place [default: the server\'s]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l chmod-dirs -d 'Octal mode (755) set with SITE CHMOD on each remote directory the tool creates [default: the server\'s]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l order -d 'Order ready files are sent and published in, per directory: arrival, mtime, name, size [default: arrival, with no order kept between connections]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l last -d 'Publish files matching GLOB (*.done, *.ok) only after every other pending file of their directory; repeatable' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l on-upload -d 'Program run (no shell) after each verified upload; the file is in FTPMONITOR_PATH, _RELPATH, _REMOTE_PATH, _SIZE' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l on-failure -d 'Program run (no shell) when a file\'s failure is first logged and when it is given up; FTPMONITOR_ERROR says why' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l min-age -d 'Upload a file only once its mtime is DUR old (writers that pause without closing): 30s, 10m, off [default: off]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l max-age -d 'Leave files whose mtime is older than DUR alone (the first sync of an old folder): 30d, off [default: off]' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -s f -l foreground -d 'Do not fork; log lines also go to stderr (systemd, launchd, containers)'
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l tls -d 'Explicit FTPS (AUTH TLS); the certificate is verified'
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l active -d 'Active mode (PORT) instead of passive (EPSV, falling back to PASV)'
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l no-recursive -d 'Watch and sync the top level only'
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l delete -d 'Propagate local deletions and renames to the server'
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l once -d 'Reconcile the whole tree once, then exit'
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l dry-run -d 'Log what would be done, change nothing remotely'
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l publish-changing -d 'Publish a copy of a file that never holds still (a growing log) even if it changed while it was read'
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -l remove-source -d 'Delete each local file once its upload is verified (move mode; conflicts with --delete)'
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand check" -s h -l help -d 'Print help'
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand status" -l pid-file -d 'PID file of the daemon to ask about' -r -F
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand status" -l state-dir -d 'State directory of the daemon to ask about' -r -F
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand status" -l max-pending-age -d 'Exit 1 if an operation has been pending longer than DUR (for Nagios, Icinga, ExecCondition): 15m, 1h' -r
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand status" -l json -d 'Print one JSON object'
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand status" -s h -l help -d 'Print help'
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand pause" -l pid-file -d 'PID file of the daemon' -r -F
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand pause" -l state-dir -d 'State directory of the daemon' -r -F
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand pause" -s h -l help -d 'Print help'
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand resume" -l pid-file -d 'PID file of the daemon' -r -F
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand resume" -l state-dir -d 'State directory of the daemon' -r -F
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand resume" -s h -l help -d 'Print help'
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand help; and not __fish_seen_subcommand_from check status pause resume help" -f -a "check" -d 'Validate the configuration, test the server, print a report and exit'
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand help; and not __fish_seen_subcommand_from check status pause resume help" -f -a "status" -d 'Tell whether the daemon runs, with its PID and what it has synced'
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand help; and not __fish_seen_subcommand_from check status pause resume help" -f -a "pause" -d 'Stop starting transfers (running ones finish); watching and queueing go on, also across a restart'
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand help; and not __fish_seen_subcommand_from check status pause resume help" -f -a "resume" -d 'Start transfers again after `ftpmonitor pause`'
complete -c ftpmonitor -n "__fish_ftpmonitor_using_subcommand help; and not __fish_seen_subcommand_from check status pause resume help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'

<#
.SYNOPSIS
    Installs ftpmonitor for the current user and starts it at every logon
    (a Scheduled Task), or removes it again with -Uninstall.

.DESCRIPTION
    Copies ftpmonitor.exe and ftpmonitor.bat to
    %LOCALAPPDATA%\Programs\ftpmonitor\ and registers the Scheduled Task
    "ftpmonitor" that runs ftpmonitor.bat when you log on. The batch file runs
    ftpmonitor in the foreground in a console window (closing the window stops
    it) and starts it again 10 s after it stops.

    The job itself is described in %APPDATA%\ftpmonitor\ftpmonitor.toml (the
    same keys as the long options: watch-dir, host, port, remote-dir, user,
    password-file, ...). The log is %LOCALAPPDATA%\ftpmonitor\ftpmonitor.log.

    No administrator rights are needed: the task runs as you, only while you
    are logged on.

.PARAMETER Exe
    The ftpmonitor.exe to install. Default: next to this script, else
    target\release\ftpmonitor.exe of the source tree this script is in, else
    %USERPROFILE%\.cargo\bin\ftpmonitor.exe (where `cargo install --path .` puts it).

.PARAMETER Uninstall
    Stop and unregister the task and remove %LOCALAPPDATA%\Programs\ftpmonitor.
    The config file, the log and the sync journal are kept.

.EXAMPLE
    powershell -ExecutionPolicy Bypass -File windows\install.ps1

.EXAMPLE
    powershell -ExecutionPolicy Bypass -File windows\install.ps1 -Uninstall
#>
[CmdletBinding()]
param(
    [string]$Exe,
    [switch]$Uninstall
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$TaskName   = 'ftpmonitor'
$InstallDir = Join-Path $env:LOCALAPPDATA 'Programs\ftpmonitor'
$ConfigFile = Join-Path $env:APPDATA 'ftpmonitor\ftpmonitor.toml'
$StateDir   = Join-Path $env:LOCALAPPDATA 'ftpmonitor'

if ($Uninstall) {
    $task = Get-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue
    if ($task) {
        Stop-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue
        Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false
        Write-Host "Removed the scheduled task '$TaskName'."
    } else {
        Write-Host "There is no scheduled task '$TaskName'."
    }
    if (Test-Path $InstallDir) {
        Remove-Item -Recurse -Force $InstallDir
        Write-Host "Removed $InstallDir."
    }
    Write-Host "Kept: $ConfigFile and $StateDir (log and sync journal)."
    exit 0
}

if (-not $Exe) {
    $candidates = @(
        (Join-Path $PSScriptRoot 'ftpmonitor.exe'),
        (Join-Path $PSScriptRoot '..\target\release\ftpmonitor.exe'),
        (Join-Path $env:USERPROFILE '.cargo\bin\ftpmonitor.exe')
    )
    $Exe = $candidates | Where-Object { Test-Path $_ } | Select-Object -First 1
    if (-not $Exe) {
        throw "ftpmonitor.exe not found (looked at: $($candidates -join ', ')). Build it with 'cargo install --path .' or pass -Exe PATH."
    }
}
if (-not (Test-Path $Exe)) {
    throw "-Exe ${Exe}: no such file"
}

# A running copy holds ftpmonitor.exe open: stop the task before replacing it.
if (Get-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue) {
    Stop-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue
}

New-Item -ItemType Directory -Force -Path $InstallDir | Out-Null
Copy-Item -Force $Exe (Join-Path $InstallDir 'ftpmonitor.exe')
Copy-Item -Force (Join-Path $PSScriptRoot 'ftpmonitor.bat') (Join-Path $InstallDir 'ftpmonitor.bat')
$Bat = Join-Path $InstallDir 'ftpmonitor.bat'

$user      = "$env:USERDOMAIN\$env:USERNAME"
$action    = New-ScheduledTaskAction -Execute $env:ComSpec -Argument "/c `"$Bat`"" -WorkingDirectory $InstallDir
$trigger   = New-ScheduledTaskTrigger -AtLogOn -User $user
$principal = New-ScheduledTaskPrincipal -UserId $user -LogonType Interactive -RunLevel Limited
# No time limit (the default stops a task after 3 days), keep running on
# battery, start a missed run when possible, never a second copy. Restarts
# after a crash are the batch file's job.
$settings  = New-ScheduledTaskSettingsSet -ExecutionTimeLimit ([TimeSpan]::Zero) `
    -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -StartWhenAvailable `
    -MultipleInstances IgnoreNew

Register-ScheduledTask -TaskName $TaskName -Action $action -Trigger $trigger -Principal $principal `
    -Settings $settings -Description 'ftpmonitor: keep a directory pushed to an FTP/FTPS server' -Force | Out-Null
Write-Host "Registered the scheduled task '$TaskName': $Bat at logon of $user."

if (-not (Test-Path $ConfigFile)) {
    New-Item -ItemType Directory -Force -Path (Split-Path $ConfigFile) | Out-Null
    Write-Warning @"
No config file yet. Create $ConfigFile, for example:

    watch-dir  = 'C:\Scans'
    host       = 'ftp.example.com'
    port       = 21
    remote-dir = '/incoming'
    user       = 'scanner'
    password-file = 'password.txt'   # next to the config file

check it with
    & '$InstallDir\ftpmonitor.exe' check --config '$ConfigFile'
and start the task with
    Start-ScheduledTask -TaskName $TaskName
"@
    exit 0
}

Start-ScheduledTask -TaskName $TaskName
Write-Host "Started. Log: $StateDir\ftpmonitor.log   Stop: Stop-ScheduledTask -TaskName $TaskName"

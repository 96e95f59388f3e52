@echo off
rem ftpmonitor.bat: runs ftpmonitor in the foreground (Windows has no daemon
rem mode) and starts it again 10 seconds after it stops, like systemd's
rem Restart=always with RestartSec=10. install.ps1 registers this file as a
rem Scheduled Task that starts at logon; run it by hand to try a set-up.
rem
rem   %~dp0ftpmonitor.exe                        the binary, next to this file
rem   %APPDATA%\ftpmonitor\ftpmonitor.toml       the job: watch-dir, host, port, remote-dir, user, ...
rem   %LOCALAPPDATA%\ftpmonitor\                 state dir: sync journal and PID file
rem   %LOCALAPPDATA%\ftpmonitor\ftpmonitor.log   the log (also shown in this window)
rem
rem Exit code 0 (stopped with Ctrl-C) and 2 (bad command line or config file:
rem a restart cannot fix it) end the loop; anything else is retried.

setlocal
set "EXE=%~dp0ftpmonitor.exe"
set "CONFIG_FILE=%APPDATA%\ftpmonitor\ftpmonitor.toml"
set "STATE_DIR=%LOCALAPPDATA%\ftpmonitor"

:run
"%EXE%" --foreground --config "%CONFIG_FILE%" --state-dir "%STATE_DIR%" --log-file "%STATE_DIR%\ftpmonitor.log"
set "CODE=%ERRORLEVEL%"
if "%CODE%"=="0" goto end
if "%CODE%"=="2" goto end
echo ftpmonitor exited with code %CODE%; starting it again in 10 seconds
rem timeout needs a console; ping waits without one.
timeout /t 10 /nobreak >nul 2>&1 || ping -n 11 127.0.0.1 >nul
goto run

:end
endlocal & exit /b %CODE%

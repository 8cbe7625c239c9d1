# Install this offpkg bundle offline into a new virtual environment (Windows).
#   powershell -ExecutionPolicy Bypass -File install.ps1 [-Python py.exe] VENV_DIR
param([Parameter(Position=0)][string]$Venv, [string]$Python = "python", [switch]$Upgrade, [switch]$NoUv)
$ErrorActionPreference = "Stop"
$here = Split-Path -Parent $MyInvocation.MyCommand.Path
$argsList = @("$here\tools\bootstrap.py", "--python", $Python)
if ($Upgrade) { $argsList += "--upgrade" }
if ($NoUv) { $argsList += "--no-uv" }
if ($Venv) { $argsList += $Venv }
& $Python @argsList
exit $LASTEXITCODE

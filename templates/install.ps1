# Install this offpkg bundle offline into a new virtual environment (Windows).
#   powershell -ExecutionPolicy Bypass -File install.ps1 [-Python py.exe] VENV_DIR
param([Parameter(Position=0)][string]$Venv, [string]$Python = "python", [switch]$Upgrade, [switch]$NoUv)
$ErrorActionPreference = "Stop"
$here = Split-Path -Parent $MyInvocation.MyCommand.Path
# The bundle's bootstrap.py needs Python 3.6 or newer (TARGET_PYTHON_FLOOR in offpkg/_probe.py).
& $Python -c "import sys; sys.exit(0 if sys.version_info >= (3, 6) else 1)" 2>$null
if ($LASTEXITCODE -ne 0) {
    [Console]::Error.WriteLine("error: $Python is not Python 3.6 or newer; this installer needs Python 3.6 or newer; pass -Python C:\path\to\python.exe")
    exit 6
}
$argsList = @("$here\tools\bootstrap.py", "--python", $Python)
if ($Upgrade) { $argsList += "--upgrade" }
if ($NoUv) { $argsList += "--no-uv" }
if ($Venv) { $argsList += $Venv }
& $Python @argsList
exit $LASTEXITCODE

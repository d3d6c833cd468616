; Inno Setup 6 script: the one-folder build (dist\tunedeck) as a per-user or machine install.
; Built by .github/workflows/installers.yml:  iscc /DAppVersion=X.Y.Z packaging\windows\tunedeck.iss
#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif

[Setup]
AppId={{6F0B3C52-8E1A-4F3B-9C53-2A7D1E0B7A11}
AppName=Tunedeck
AppVersion={#AppVersion}
AppPublisher=Tunedeck developers
DefaultDirName={autopf}\Tunedeck
DefaultGroupName=Tunedeck
PrivilegesRequiredOverridesAllowed=dialog
OutputDir=..\..\dist
OutputBaseFilename=Tunedeck-{#AppVersion}-windows-setup
Compression=lzma2/max
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
UninstallDisplayIcon={app}\tunedeck-gui.exe
WizardStyle=modern

[Files]
Source: "..\..\dist\tunedeck\*"; DestDir: "{app}"; Flags: recursesubdirs createallsubdirs ignoreversion

[Icons]
Name: "{group}\Tunedeck"; Filename: "{app}\tunedeck-gui.exe"
Name: "{group}\Uninstall Tunedeck"; Filename: "{uninstallexe}"
Name: "{autodesktop}\Tunedeck"; Filename: "{app}\tunedeck-gui.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop icon"; Flags: unchecked

[Run]
Filename: "{app}\tunedeck-gui.exe"; Description: "Start Tunedeck"; Flags: nowait postinstall skipifsilent
